//! A resumable tool's cursor: `RUN#<name>` / `CURSOR`, holding where the run stopped and what
//! it had done by then (the tool's own JSON), so an interrupted run resumes with its report.

use serde::{Deserialize, Serialize};

use super::{from_item, key, to_item, Item, StoreError, Table};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCursor {
    /// The last item the run finished, in the run's own order.
    pub after: String,
    /// What the run had done up to `after`, as the tool serialised it.
    pub progress: String,
    pub updated_at: String,
}

fn cursor_key(run: &str) -> Item {
    key(format!("RUN#{run}"), "CURSOR")
}

impl Table {
    pub async fn run_cursor(&self, run: &str) -> Result<Option<RunCursor>, StoreError> {
        self.get(cursor_key(run)).await?.map(from_item).transpose()
    }

    pub async fn save_run_cursor(&self, run: &str, cursor: &RunCursor) -> Result<(), StoreError> {
        let request = self
            .client()
            .put_item()
            .table_name(self.name())
            .set_item(Some(to_item(cursor_key(run), cursor)?));
        self.send(|| request.clone().send()).await.map(|_| ())
    }

    /// Ends the run: the next one starts from the beginning.
    pub async fn delete_run_cursor(&self, run: &str) -> Result<(), StoreError> {
        let request = self
            .client()
            .delete_item()
            .table_name(self.name())
            .set_key(Some(cursor_key(run)));
        self.send(|| request.clone().send()).await.map(|_| ())
    }
}
