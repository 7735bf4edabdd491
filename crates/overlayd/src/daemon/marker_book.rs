//! The networks service's own state: the marker file on disk, whether
//! marker entries are still to be rebuilt from host tags (the marker was
//! missing or quarantined), and the snapshot of [`Core`] published for
//! read-only requests after each save. Other parts of the daemon save and
//! publish through these methods; none touches the file or the snapshot.

use std::sync::{Arc, PoisonError, RwLock};

use overlayd_state::{Marker, MarkerFile};

use super::error::{OpError, OpResult};
use super::node::Core;
use super::views::ReadView;

/// The marker file, its rebuild flag and the published snapshot.
pub struct MarkerBook {
    file: MarkerFile,
    rebuild: bool,
    published: Arc<RwLock<Arc<Core>>>,
}

impl MarkerBook {
    /// A book over `file`; `rebuild` when entries must be rebuilt from host
    /// tags at reconcile; `first` is the state reads see until the first save.
    pub fn new(file: MarkerFile, rebuild: bool, first: &Core) -> Self {
        MarkerBook {
            file,
            rebuild,
            published: Arc::new(RwLock::new(Arc::new(first.clone()))),
        }
    }

    /// Save `marker` durably (temp, fsync, rename, fsync dir), handing the
    /// worker over while the disk works.
    pub fn save(&self, marker: &Marker) -> OpResult<()> {
        super::blocking::off_worker(|| self.file.save(marker)).map_err(OpError::from)
    }

    /// Publish `core` for read-only requests.
    pub fn publish(&self, core: &Core) {
        *self
            .published
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(core.clone());
    }

    /// The lock-free view read-only requests are served from.
    pub fn read_view(&self) -> ReadView {
        ReadView::new(self.published.clone())
    }

    /// Whether marker entries are still to be rebuilt from host tags.
    pub fn needs_rebuild(&self) -> bool {
        self.rebuild
    }

    /// The rebuild is done (or no longer needed).
    pub fn rebuilt(&mut self) {
        self.rebuild = false;
    }
}
