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
    /// Another process holds the directory.
    #[error(
        "{path} is locked by another running collector: give each collector a spill directory of its own"
    )]
    Locked { path: PathBuf },
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

/// One frame's bytes.
fn encode(frame: &Frame) -> Vec<u8> {
    let mut buf = Vec::with_capacity(frame.key.len() + frame.payload.len() + 16);
    encode_into(frame, &mut buf);
    buf
}

/// Appends one frame's bytes to `buf`.
pub(crate) fn encode_into(frame: &Frame, buf: &mut Vec<u8>) {
    let start = buf.len();
    buf.extend_from_slice(&(frame.key.len() as u32).to_le_bytes());
    buf.extend_from_slice(&frame.key);
    buf.extend_from_slice(&(frame.payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&frame.payload);
    buf.extend_from_slice(&(frame.events as u32).to_le_bytes());
    let crc = crc32fast::hash(&buf[start..]);
    buf.extend_from_slice(&crc.to_le_bytes());
}

/// The complete spill files and journal segments in `dir`, oldest first,
/// each with its frames. Leftover `*.tmp` files (a write cut short by a
/// crash: never acknowledged as spilled) are removed. A journal segment
/// may end in a frame torn by a kill mid-write, whose request was never
/// answered: the whole frames before it are kept. A missing directory is
/// empty.
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
            Some(crate::journal::EXTENSION) => paths.push(path),
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
            let (frames, damage) = decode(&bytes);
            let journal = path
                .extension()
                .is_some_and(|e| e == crate::journal::EXTENSION);
            match damage {
                None => {}
                Some((at, what)) if journal && what != "checksum mismatch" => {
                    tracing::warn!(path = %path.display(), at, what, "a journal segment ends in a torn write (a kill mid-request); keeping the whole frames before it");
                }
                Some((at, what)) => return Err(SpillError::Damaged { path, at, what }),
            }
            Ok((path, frames))
        })
        .collect()
}

/// The frames of `bytes` up to the first damaged one, and where and how it
/// is damaged.
fn decode(mut bytes: &[u8]) -> (Vec<Frame>, Option<(usize, &'static str)>) {
    let total = bytes.len();
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        let at = total - bytes.len();
        match decode_one(&mut bytes) {
            Ok(frame) => frames.push(frame),
            Err(what) => return (frames, Some((at, what))),
        }
    }
    (frames, None)
}

fn decode_one(bytes: &mut &[u8]) -> Result<Frame, &'static str> {
    let start = *bytes;
    let key = take_sized(bytes).ok_or("truncated key")?;
    let payload = take_sized(bytes).ok_or("truncated payload")?;
    let events = take_u32(bytes).ok_or("truncated event count")?;
    let body_len = start.len() - bytes.len();
    let crc = take_u32(bytes).ok_or("truncated checksum")?;
    if crc32fast::hash(&start[..body_len]) != crc {
        return Err("checksum mismatch");
    }
    Ok(Frame {
        key: key.to_vec(),
        payload: payload.to_vec(),
        events: events as usize,
    })
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

/// Takes the spill directory (created if missing) for this process: a
/// second collector on the same directory would replay the first one's
/// live journal. The lock lasts as long as the returned file is open.
pub fn lock(dir: &Path) -> Result<File, SpillError> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let path = dir.join("lock");
    let file = File::create(&path).map_err(io_err(&path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(SpillError::Locked { path }),
        Err(fs::TryLockError::Error(source)) => Err(SpillError::Io { path, source }),
    }
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

    #[test]
    fn a_directory_is_locked_by_one_holder_at_a_time() {
        let d = dir("lock");
        let held = lock(&d).unwrap();
        let err = lock(&d).unwrap_err().to_string();
        assert!(err.contains("locked by another running collector"), "{err}");
        drop(held);
        assert!(lock(&d).is_ok(), "free again once the holder is gone");
        fs::remove_dir_all(&d).unwrap();
    }
}
