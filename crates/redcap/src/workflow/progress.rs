//! Progress reporting for long workflows (the CLI draws bars from it; libraries can log it).

/// Something a long workflow reports.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProgressEvent {
    /// A folder was listed (tree walks).
    FolderListed {
        /// Its path from the walk's root ("" for the root).
        path: String,
    },
    /// The amount of work is known.
    Planned {
        /// Files (or batches) to do.
        items: u64,
        /// Bytes to transfer, where known.
        bytes: Option<u64>,
    },
    /// An item started.
    Started {
        /// File path or batch label.
        item: String,
        /// Its size, where known.
        bytes: Option<u64>,
    },
    /// An item finished.
    Finished {
        /// File path or batch label.
        item: String,
        /// Bytes moved.
        bytes: u64,
    },
    /// An item failed in a way smaller ones may survive, and was split (self-healing batched
    /// export: a batch halved, or one record asked for instrument by instrument).
    Split {
        /// The batch label.
        item: String,
        /// Why it failed.
        reason: String,
        /// How many requests replace it.
        parts: u64,
    },
    /// An item was skipped (already present).
    Skipped {
        /// File path.
        item: String,
    },
    /// An item failed; the workflow goes on with the others.
    Failed {
        /// File path or batch label.
        item: String,
        /// Why.
        error: String,
    },
}

/// Receives progress events. Implementations must be cheap: they are called inline.
pub trait Progress: Send + Sync {
    /// One event.
    fn event(&self, event: ProgressEvent);
}

/// Ignores progress.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn event(&self, _: ProgressEvent) {}
}

impl<F: Fn(ProgressEvent) + Send + Sync> Progress for F {
    fn event(&self, event: ProgressEvent) {
        self(event)
    }
}

impl std::fmt::Debug for dyn Progress + '_ {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress")
    }
}
