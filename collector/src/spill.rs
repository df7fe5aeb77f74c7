//! The spill directory: accepted records that were still undelivered when
//! the shutdown deadline passed, kept on disk and produced again at the next
//! start.
//!
//! A spill file is written whole, then renamed into place: a reader sees a
//! complete `*.spill` file or none (a crash mid-write leaves a `*.tmp`,
//! which is ignored and removed). Each frame carries a CRC-32 so that a
//! damaged file is refused with its path instead of producing garbage.
//!
//! Frame layout (little-endian): `u32 key_len, key, u32 payload_len,
//! payload, u32 events, u32 crc32(all before)`. The payload is the Kafka
//! record exactly as it was first produced (its first byte is the format
//! version), so a replay that duplicates a delivery the broker had in fact
//! stored is an exact copy: same `received_at`, same `seq`s, collapsed
//! downstream.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// One Kafka record waiting to be produced again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The record key (`view_id`).
    pub key: Vec<u8>,
    /// The encoded record, as first produced.
    pub payload: Vec<u8>,
    /// How many accepted events it holds.
    pub events: usize,
}

/// Why a spill directory could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum SpillError {
    /// A file operation failed.
    #[error("spill {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A file is not a complete, undamaged spill file.
    #[error(
        "spill file {path} is damaged at byte {at}: {what} (move it aside to start without it)"
    )]
    Damaged {
        path: PathBuf,
        at: usize,
        what: &'static str,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SpillError + '_ {
    move |source| SpillError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes `frames` to a new spill file in `dir` (created if missing) and
/// makes it durable (fsync of the file and the directory) before returning
/// its path. Nothing is written for no frames.
pub fn write(dir: &Path, frames: &[Frame]) -> Result<Option<PathBuf>, SpillError> {
    if frames.is_empty() {
        return Ok(None);
    }
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let name = format!("{stamp}-{}", std::process::id());
    let tmp = dir.join(format!("{name}.tmp"));
    let done = dir.join(format!("{name}.spill"));
    let file = File::create(&tmp).map_err(io_err(&tmp))?;
    let mut out = BufWriter::new(file);
    for frame in frames {
        out.write_all(&encode(frame)).map_err(io_err(&tmp))?;
    }
    let file = out.into_inner().map_err(|e| io_err(&tmp)(e.into_error()))?;
    file.sync_all().map_err(io_err(&tmp))?;
    drop(file);
    fs::rename(&tmp, &done).map_err(io_err(&done))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))?;
    Ok(Some(done))
}

fn encode(frame: &Frame) -> Vec<u8> {
    let mut buf = Vec::with_capacity(frame.key.len() + frame.payload.len() + 16);
    buf.extend_from_slice(&(frame.key.len() as u32).to_le_bytes());
    buf.extend_from_slice(&frame.key);
    buf.extend_from_slice(&(frame.payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&frame.payload);
    buf.extend_from_slice(&(frame.events as u32).to_le_bytes());
    let crc = crc32fast::hash(&buf);
    buf.extend_from_slice(&crc.to_le_bytes());
    buf
}

/// The complete spill files in `dir`, oldest first, each with its frames.
/// Leftover `*.tmp` files (a write cut short by a crash: never
/// acknowledged as spilled) are removed. A missing directory is empty.
pub fn load(dir: &Path) -> Result<Vec<(PathBuf, Vec<Frame>)>, SpillError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(dir)(e)),
    };
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry.map_err(io_err(dir))?.path();
        match path.extension().and_then(|e| e.to_str()) {
            Some("spill") => paths.push(path),
            Some("tmp") => {
                tracing::warn!(path = %path.display(), "removing an incomplete spill file");
                fs::remove_file(&path).map_err(io_err(&path))?;
            }
            _ => {}
        }
    }
    // Names start with a nanosecond stamp of equal width for centuries.
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let mut bytes = Vec::new();
            File::open(&path)
                .and_then(|mut f| f.read_to_end(&mut bytes))
                .map_err(io_err(&path))?;
            let frames = decode(&bytes).map_err(|(at, what)| SpillError::Damaged {
                path: path.clone(),
                at,
                what,
            })?;
            Ok((path, frames))
        })
        .collect()
}

fn decode(mut bytes: &[u8]) -> Result<Vec<Frame>, (usize, &'static str)> {
    let total = bytes.len();
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        let at = total - bytes.len();
        let start = bytes;
        let fail = |what| (at, what);
        let key = take_sized(&mut bytes).ok_or_else(|| fail("truncated key"))?;
        let payload = take_sized(&mut bytes).ok_or_else(|| fail("truncated payload"))?;
        let events = take_u32(&mut bytes).ok_or_else(|| fail("truncated event count"))?;
        let body_len = start.len() - bytes.len();
        let crc = take_u32(&mut bytes).ok_or_else(|| fail("truncated checksum"))?;
        if crc32fast::hash(&start[..body_len]) != crc {
            return Err(fail("checksum mismatch"));
        }
        frames.push(Frame {
            key: key.to_vec(),
            payload: payload.to_vec(),
            events: events as usize,
        });
    }
    Ok(frames)
}

fn take_u32(bytes: &mut &[u8]) -> Option<u32> {
    let (head, rest) = bytes.split_first_chunk::<4>()?;
    *bytes = rest;
    Some(u32::from_le_bytes(*head))
}

fn take_sized<'a>(bytes: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = take_u32(bytes)? as usize;
    if bytes.len() < len {
        return None;
    }
    let (head, rest) = bytes.split_at(len);
    *bytes = rest;
    Some(head)
}

/// Removes a spill file whose frames were all delivered.
pub fn remove(path: &Path) -> Result<(), SpillError> {
    fs::remove_file(path).map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("qoe-spill-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn frame(n: u8) -> Frame {
        Frame {
            key: vec![b'v', n],
            payload: vec![n; n as usize * 3],
            events: n as usize,
        }
    }

    #[test]
    fn frames_survive_a_write_and_load_in_file_order() {
        let d = dir("roundtrip");
        let first = write(&d, &[frame(1), frame(2)]).unwrap().unwrap();
        let second = write(&d, &[frame(0), frame(9)]).unwrap().unwrap();
        let loaded = load(&d).unwrap();
        assert_eq!(
            loaded,
            vec![
                (first.clone(), vec![frame(1), frame(2)]),
                (second, vec![frame(0), frame(9)])
            ]
        );
        remove(&first).unwrap();
        assert_eq!(load(&d).unwrap().len(), 1);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn nothing_to_spill_writes_no_file_and_a_missing_dir_is_empty() {
        let d = dir("empty");
        assert_eq!(write(&d, &[]).unwrap(), None);
        assert!(load(&d).unwrap().is_empty());
    }

    #[test]
    fn an_incomplete_write_is_removed_and_a_damaged_file_refused_by_name() {
        let d = dir("damaged");
        let path = write(&d, &[frame(3), frame(4)]).unwrap().unwrap();
        fs::write(d.join("7-1.tmp"), b"half a frame").unwrap();
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 7;
        bytes[last] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        let err = load(&d).unwrap_err().to_string();
        assert!(!d.join("7-1.tmp").exists(), "the incomplete write is gone");
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("checksum mismatch"), "{err}");
        bytes.truncate(bytes.len() - 2);
        fs::write(&path, &bytes).unwrap();
        assert!(load(&d)
            .unwrap_err()
            .to_string()
            .contains("truncated checksum"));
        fs::remove_dir_all(&d).unwrap();
    }
}
