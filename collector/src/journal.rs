//! The write-ahead journal: every accepted record is appended to a file in
//! the spill directory *before* its request is answered, so a collector
//! killed with `-9` (or by the OOM killer, or a panic) loses nothing it
//! acknowledged. The next start reads the journal files it left and
//! produces them again, as it does spill files.
//!
//! A `write(2)` is enough to survive the process: the data is in the
//! kernel's page cache the moment the call returns. Each closed segment is
//! also synced to disk, so a host crash loses at most the last segment's
//! records (about `journal_rotate`'s worth).
//!
//! Segments rotate every `producer.journal_rotate`. Each segment has a slot
//! in a ring of counters: appending adds the number of records, and each
//! delivery report subtracts one (the slot travels in the record's
//! delivery opaque, see `producer::Sent`). A closed segment whose counter
//! is zero holds only delivered records and is deleted. Replaying a
//! segment that held some delivered records duplicates them in Kafka,
//! which the processor collapses (a view's events are keyed by `seq`).
//!
//! The files use the spill frame format ([`crate::spill`]), one `write` per
//! request under a mutex. A failed write is cut back off the file, and the
//! request is refused (503 `journal_unavailable`): a full disk sheds load
//! at the edge instead of accepting what could be lost.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::metrics::metrics;
use crate::spill::{self, Frame};

/// Segment slots; a slot is reused only once its old segment is deleted.
pub(crate) const SLOTS: usize = 4096;

/// The file extension of journal segments in the spill directory.
pub const EXTENSION: &str = "journal";

/// The segment being written.
struct Current {
    generation: u64,
    path: PathBuf,
    file: File,
    len: u64,
}

/// A closed segment waiting for its records' deliveries.
struct Closed {
    generation: u64,
    path: PathBuf,
}

/// The journal of one collector process. Shared by the HTTP handlers
/// (append), the delivery callback (delivered) and its own thread (rotate).
pub struct Journal {
    dir: PathBuf,
    current: Mutex<Current>,
    closed: Mutex<Vec<Closed>>,
    outstanding: Box<[AtomicU64]>,
    stop: AtomicBool,
}

impl Journal {
    /// Opens a new segment in `dir` (which [`spill::lock`] holds).
    pub fn open(dir: &Path) -> io::Result<Arc<Journal>> {
        let current = Self::segment(dir, 0)?;
        metrics().journal_segments.set(1);
        Ok(Arc::new(Journal {
            dir: dir.to_owned(),
            current: Mutex::new(current),
            closed: Mutex::new(Vec::new()),
            outstanding: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            stop: AtomicBool::new(false),
        }))
    }

    fn segment(dir: &Path, generation: u64) -> io::Result<Current> {
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let path = dir.join(format!("{stamp}-{}.{EXTENSION}", std::process::id()));
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)?;
        Ok(Current {
            generation,
            path,
            file,
            len: 0,
        })
    }

    /// Appends `frames` in one write and returns the slot their deliveries
    /// must report to ([`Journal::delivered`]). On an error nothing of them
    /// stays in the file.
    pub fn append(&self, frames: &[Frame]) -> io::Result<u16> {
        let size: usize = frames
            .iter()
            .map(|f| f.key.len() + f.payload.len() + 16)
            .sum();
        let mut bytes = Vec::with_capacity(size);
        for frame in frames {
            spill::encode_into(frame, &mut bytes);
        }
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let slot = (current.generation % SLOTS as u64) as usize;
        self.outstanding[slot].fetch_add(frames.len() as u64, Ordering::AcqRel);
        if let Err(err) = current.file.write_all(&bytes) {
            self.outstanding[slot].fetch_sub(frames.len() as u64, Ordering::AcqRel);
            // A partial frame would hide every later one from a reader.
            let _ = current.file.set_len(current.len);
            return Err(err);
        }
        current.len += bytes.len() as u64;
        metrics().journal_bytes.add(bytes.len() as i64);
        Ok(slot as u16)
    }

    /// One record appended to `slot` was acknowledged by the broker.
    pub fn delivered(&self, slot: u16) {
        self.outstanding[slot as usize].fetch_sub(1, Ordering::AcqRel);
    }

    /// Closes the current segment if it holds anything (syncing it to
    /// disk), then deletes every closed segment whose records are all
    /// delivered.
    fn rotate(&self) {
        let mut closed = self.closed.lock().unwrap_or_else(|e| e.into_inner());
        let finished = {
            let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
            let next = current.generation + 1;
            let slot_free = !closed
                .iter()
                .any(|c| c.generation % SLOTS as u64 == next % SLOTS as u64);
            if current.len == 0 || !slot_free {
                None
            } else {
                match Self::segment(&self.dir, next) {
                    Ok(new) => Some(std::mem::replace(&mut *current, new)),
                    Err(err) => {
                        tracing::warn!(error = %err, dir = %self.dir.display(), "cannot open a new journal segment; writing on in the current one");
                        None
                    }
                }
            }
        };
        if let Some(old) = finished {
            if let Err(err) = old.file.sync_data() {
                tracing::warn!(error = %err, path = %old.path.display(), "cannot sync a journal segment");
            }
            closed.push(Closed {
                generation: old.generation,
                path: old.path,
            });
        }
        closed.retain(|c| {
            let slot = (c.generation % SLOTS as u64) as usize;
            if self.outstanding[slot].load(Ordering::Acquire) > 0 {
                return true;
            }
            let size = fs::metadata(&c.path).map(|m| m.len()).unwrap_or(0);
            match fs::remove_file(&c.path) {
                Ok(()) => {
                    metrics().journal_bytes.sub(size as i64);
                    false
                }
                Err(err) => {
                    tracing::warn!(error = %err, path = %c.path.display(), "cannot remove a delivered journal segment; trying again");
                    true
                }
            }
        });
        metrics().journal_segments.set(closed.len() as i64 + 1);
    }

    /// Starts the thread that rotates segments every `every`, until
    /// [`Journal::retire`].
    pub fn start_rotating(self: &Arc<Self>, every: Duration) -> JoinHandle<()> {
        let journal = self.clone();
        std::thread::Builder::new()
            .name("journal".into())
            .spawn(move || {
                let tick = Duration::from_millis(50).min(every);
                let mut waited = Duration::ZERO;
                while !journal.stop.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    waited += tick;
                    if waited >= every {
                        waited = Duration::ZERO;
                        journal.rotate();
                    }
                }
            })
            .expect("spawn the journal thread")
    }

    /// After a clean stop (every record delivered or in a synced spill
    /// file): stops rotating and deletes every segment.
    pub fn retire(&self) {
        self.stop.store(true, Ordering::Relaxed);
        let mut closed = self.closed.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        for path in closed
            .drain(..)
            .map(|c| c.path)
            .chain([current.path.clone()])
        {
            if let Err(err) = fs::remove_file(&path) {
                tracing::warn!(error = %err, path = %path.display(), "cannot remove a journal segment; its records will be produced again at the next start");
            }
        }
        metrics().journal_segments.set(0);
        metrics().journal_bytes.set(0);
    }

    /// Stops rotating and keeps every segment, for the next start to
    /// replay (the spill file could not be written).
    pub fn keep(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// The segment files, current last.
    #[cfg(test)]
    fn files(&self) -> Vec<PathBuf> {
        let closed = self.closed.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        closed
            .iter()
            .map(|c| c.path.clone())
            .chain([current.path.clone()])
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("qoe-journal-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn frame(n: u8) -> Frame {
        Frame {
            key: vec![b'v', n],
            payload: vec![n; 5],
            events: 1,
        }
    }

    #[test]
    fn a_segment_goes_once_every_record_in_it_is_delivered() {
        let d = dir("delivered");
        let journal = Journal::open(&d).unwrap();
        let slot = journal.append(&[frame(1), frame(2)]).unwrap();
        journal.rotate();
        let slot2 = journal.append(&[frame(3)]).unwrap();
        assert_ne!(slot, slot2, "a new segment after the rotation");
        let files = journal.files();
        assert_eq!(files.len(), 2);
        // What a restart would replay right now: all three.
        let loaded = spill::load(&d).unwrap();
        let frames: Vec<_> = loaded.into_iter().flat_map(|(_, f)| f).collect();
        assert_eq!(frames, vec![frame(1), frame(2), frame(3)]);

        journal.delivered(slot);
        journal.rotate();
        assert!(
            files[0].exists(),
            "one record of the first segment is undelivered"
        );
        journal.delivered(slot);
        journal.rotate();
        assert!(!files[0].exists(), "all delivered: deleted");
        assert!(files[1].exists(), "closed but undelivered");
        journal.delivered(slot2);
        journal.rotate();
        assert!(!files[1].exists());
        journal.retire();
        assert_eq!(
            fs::read_dir(&d).unwrap().count(),
            0,
            "retire removes the rest"
        );
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn an_empty_segment_is_not_rotated_and_retire_removes_it() {
        let d = dir("empty");
        let journal = Journal::open(&d).unwrap();
        journal.rotate();
        journal.rotate();
        assert_eq!(journal.files().len(), 1);
        journal.retire();
        assert_eq!(fs::read_dir(&d).unwrap().count(), 0);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_torn_tail_is_dropped_when_read_back() {
        let d = dir("torn");
        let journal = Journal::open(&d).unwrap();
        journal.append(&[frame(1)]).unwrap();
        let path = journal.files()[0].clone();
        let good = fs::read(&path).unwrap();
        // The tail a kill during a write leaves: the reader keeps what is
        // whole and drops the torn frame.
        let mut torn = good.clone();
        let mut second = Vec::new();
        spill::encode_into(&frame(2), &mut second);
        torn.extend_from_slice(&second[..7]);
        fs::write(&path, &torn).unwrap();
        let loaded = spill::load(&d).unwrap();
        assert_eq!(loaded[0].1, vec![frame(1)]);
        fs::remove_dir_all(&d).unwrap();
    }
}
