//! One replica at a time for each periodic job: a session advisory lock per job, tried (never
//! waited for) on a pooled connection. The guard takes that connection out of the pool and
//! closes it when dropped, which releases the lock even if the job failed half-way; a
//! connection per job per upkeep round is cheap next to what the jobs do.

use super::PostgresStore;
use crate::store::StoreError;

/// Holds a job's advisory lock until dropped.
pub(super) struct JobLock {
    _conn: deadpool_postgres::ClientWrapper,
}

impl PostgresStore {
    /// The lock for `job` if no other replica holds it now.
    pub(super) async fn try_job_lock(&self, job: &str) -> Result<Option<JobLock>, StoreError> {
        let conn = self.conn().await?;
        let row = conn
            .query_one(
                "SELECT pg_try_advisory_lock(hashtextextended('pkgw job ' || $1, 0))",
                &[&job],
            )
            .await?;
        if !row.try_get::<_, bool>(0)? {
            return Ok(None);
        }
        // Out of the pool: the lock lives as long as this connection, which nobody else uses.
        Ok(Some(JobLock {
            _conn: deadpool_postgres::Object::take(conn),
        }))
    }
}
