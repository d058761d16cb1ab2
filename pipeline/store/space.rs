//! Disk space: alerts must still reach MQTT when evidence has filled the disk.
//!
//! The outbox lives in the store's database, on the same disk as the clips.
//! When that disk filled mid-run, 95 of 106 events were never published. Two
//! guards keep the database writable:
//! - no new snapshot or clip is started while the filesystem has less than
//!   [`MIN_FREE_FOR_EVIDENCE`] available, so vigil's own evidence never takes
//!   the last space;
//! - `reserve.bin` ([`RESERVE_BYTES`], really allocated) is deleted the first
//!   time the database finds the disk full anyway (another program filled it),
//!   and the write is tried again; it is made again once there is room.

use super::{Store, StoreError};
use std::io::Write;
use std::path::Path;

/// Space kept for the database alone: about 4 000 events with their messages.
pub const RESERVE_BYTES: u64 = 8 << 20;
/// Below this much available space no new evidence file is started.
pub const MIN_FREE_FOR_EVIDENCE: u64 = 32 << 20;
const RESERVE_FILE: &str = "reserve.bin";

pub use crate::stats::available_bytes;

/// Whether the error is the database finding its disk full.
pub fn is_disk_full(e: &StoreError) -> bool {
    matches!(e, StoreError::Sql { source, .. } if is_sql_disk_full(source))
}

/// The same, for a bare SQLite error (the publisher's own connection).
pub(super) fn is_sql_disk_full(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error {
                code: rusqlite::ErrorCode::DiskFull,
                ..
            },
            _
        )
    )
}

/// Deletes the reserve file in the store directory `dir` and says so; false
/// when there was none. Whichever connection meets the full disk first, the
/// store's or the publisher's, releases it: the publisher's deletes after a
/// PUBACK need room in the log too, and failing them would report delivered
/// alerts as undelivered.
pub(super) fn release_reserve(dir: &Path) -> bool {
    if std::fs::remove_file(dir.join(RESERVE_FILE)).is_err() {
        return false;
    }
    tracing::error!(
        "store {}: the disk is full; its {} MB reserve was released so that alerts are still stored and published; free space (retention: [storage] max_bytes)",
        dir.display(),
        RESERVE_BYTES >> 20
    );
    true
}

fn allocate(path: &Path, bytes: u64) -> std::io::Result<()> {
    use std::os::unix::io::AsRawFd;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp)?;
    // SAFETY: a valid open descriptor; a sparse file would reserve nothing.
    let allocated = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, bytes as libc::off_t) };
    if allocated != 0 {
        let chunk = vec![0u8; 1 << 20];
        for _ in 0..bytes.div_ceil(chunk.len() as u64) {
            if let Err(e) = file.write_all(&chunk) {
                drop(file);
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        }
    }
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

impl Store {
    /// Makes the reserve file if it is missing and the disk has room for it
    /// and for evidence after it.
    pub fn keep_reserve(&self) {
        let path = self.dir.join(RESERVE_FILE);
        if path.exists() {
            return;
        }
        let room = available_bytes(&self.dir)
            .is_some_and(|free| free >= RESERVE_BYTES + MIN_FREE_FOR_EVIDENCE);
        if !room {
            return;
        }
        match allocate(&path, RESERVE_BYTES) {
            Ok(()) => tracing::debug!("store {}: space reserve in place", self.dir.display()),
            Err(e) => tracing::warn!(
                "store {}: cannot make {}: {e}",
                self.dir.display(),
                path.display()
            ),
        }
    }

    /// Whether a new snapshot or clip may be written: the disk keeps room for
    /// the alerts themselves. (Unknown space counts as room.)
    pub fn room_for_evidence(&self) -> bool {
        available_bytes(&self.dir).is_none_or(|free| free >= MIN_FREE_FOR_EVIDENCE)
    }

    /// Runs a database write; when the disk is full, frees the reserve once
    /// and tries again.
    pub(super) fn with_space<T>(
        &mut self,
        mut write: impl FnMut(&mut Store) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match write(self) {
            Err(e) if is_disk_full(&e) && release_reserve(&self.dir) => write(self),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_is_real_and_only_made_with_room_to_spare() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(RESERVE_FILE);
        allocate(&path, 1 << 20).unwrap();
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.len(), 1 << 20);
        // Blocks really allocated (512-byte units), not a sparse file.
        assert!(meta.blocks() * 512 >= 1 << 20, "{} blocks", meta.blocks());
        assert!(available_bytes(dir.path()).unwrap() > 0);
        let full = StoreError::Sql {
            path: "x".into(),
            source: rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
                None,
            ),
        };
        assert!(is_disk_full(&full));
    }
}
