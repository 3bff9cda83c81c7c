//! The one place the current routing table lives: readers load it lock-free per request.

use std::sync::Arc;

use arc_swap::ArcSwap;

use super::RoutingTable;

/// Shared handle to the live table.
#[derive(Clone)]
pub struct TableHandle(Arc<ArcSwap<RoutingTable>>);

impl Default for TableHandle {
    fn default() -> Self {
        TableHandle(Arc::new(ArcSwap::from_pointee(RoutingTable::default())))
    }
}

impl TableHandle {
    /// The current table (one atomic load and a reference count).
    pub fn load(&self) -> Arc<RoutingTable> {
        self.0.load_full()
    }

    /// Publishes `table`; in-flight requests keep the table they loaded.
    pub fn store(&self, table: Arc<RoutingTable>) {
        self.0.store(table);
    }
}
