//! Where the background audit (`corbel-audit`) runs. It evaluates plugins as admission does, and
//! on a busy host it would take the cores the webhook needs: the admission bench measured
//! admission p99 at 2,000 req/s at 2.0× with an audit running, on two cores, when the audit ran
//! on the server's own threads (docs/benchmarks.md).
//!
//! So it runs on a runtime of its own: one thread at the lowest CPU priority (nice 19, a
//! per-thread setting on Linux). The kernel then gives the webhook's threads the CPU first
//! (a nice-19 thread weighs 15 against a nice-0 thread's 1,024), while idle cores still go to
//! the audit. A priority rather than a quota: an audit on an idle host runs at full speed.
//!
//! Shadow candidates ([`crate::shadow`]) stay on the server's runtime, bounded by their permits:
//! on this thread they were starved whenever anything else ran (82 of 101 sequential requests
//! skipped in `tests/shadow.rs` while a build ran beside it), and a candidate that is skipped
//! gives the operator no evidence.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::Handle;
use tokio::task::JoinHandle;

/// The lowest priority (the highest nice value).
const NICE: i32 = 19;

static RUNTIME: OnceLock<Handle> = OnceLock::new();

/// The background runtime, started on first use.
fn handle() -> &'static Handle {
    RUNTIME.get_or_init(|| {
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("corbel-background".into())
            .spawn(move || {
                lower_priority();
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a current-thread runtime builds");
                sender
                    .send(runtime.handle().clone())
                    .expect("the caller waits for the handle");
                runtime.block_on(std::future::pending::<()>());
            })
            .expect("the background thread starts");
        receiver
            .recv()
            .expect("the background thread sends its handle")
    })
}

#[cfg(target_os = "linux")]
fn lower_priority() {
    // SAFETY: setpriority has no memory effects; `who` 0 with PRIO_PROCESS is the calling
    // thread on Linux (threads are scheduled as tasks, each with its own nice value).
    let result = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, NICE) };
    if result != 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), "the background thread keeps the normal CPU priority: shadow evaluation and audits compete with admission");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {
    tracing::debug!(
        "background work runs at the normal CPU priority on this platform (nice is per process)"
    );
}

/// Runs `future` on the background thread.
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    handle().spawn(future)
}

/// Runs `future` on the background thread and waits for it from the caller's runtime (so that
/// the caller's own timers, such as a Lease's renewals, keep the normal priority).
pub async fn run<F>(future: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match spawn(future).await {
        Ok(output) => output,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("the background runtime never stops, but a task was cancelled: {e}"),
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn background_work_runs_on_its_own_low_priority_thread() {
        let (name, nice) = super::run(async {
            let name = std::thread::current().name().map(str::to_owned);
            // SAFETY: getpriority reads the calling thread's nice value.
            let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
            (name, nice)
        })
        .await;
        assert_eq!(name.as_deref(), Some("corbel-background"));
        assert_eq!(nice, super::NICE);
    }
}
