//! Reading a row's columns the same way on both backends, so a row converts to a domain type
//! in one function (`agent_from_row(&(impl Fields + ?Sized))`) instead of one per driver. Such a
//! function takes a typed row, or the `&dyn Fields` that `Store::select_all` hands it.

use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;

/// The column types the store uses: text, 64-bit integers and flags, each maybe NULL.
pub(crate) trait Fields {
    fn text(&self, column: &str) -> String;
    fn opt_text(&self, column: &str) -> Option<String>;
    fn int(&self, column: &str) -> i64;
    fn opt_int(&self, column: &str) -> Option<i64>;
    fn flag(&self, column: &str) -> bool;
}

macro_rules! fields_for {
    ($row:ty) => {
        impl Fields for $row {
            fn text(&self, column: &str) -> String {
                self.get(column)
            }
            fn opt_text(&self, column: &str) -> Option<String> {
                self.get(column)
            }
            fn int(&self, column: &str) -> i64 {
                self.get(column)
            }
            fn opt_int(&self, column: &str) -> Option<i64> {
                self.get(column)
            }
            fn flag(&self, column: &str) -> bool {
                self.get(column)
            }
        }
    };
}

fields_for!(SqliteRow);
fields_for!(PgRow);
