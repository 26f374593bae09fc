//! The event loop: notify (inotify / FSEvents) feeds a bounded channel, a
//! scheduler de-duplicates paths, and a fixed number of jobs run on tokio's
//! blocking pool.
//!
//! Ordering: watches are armed *before* the initial sweep, so a file that
//! lands during the sweep is seen by one or the other (possibly both; the
//! second look is a cache hit). A directory that appears later is swept as
//! soon as it is reported, because inotify only watches it from the moment
//! notify adds the watch and anything written before that is not reported;
//! and swept again a second and five seconds later, because notify reports
//! the directory before it adds that watch.
//!
//! Bounded resources under a burst (10,000 files landing at once): the
//! notify thread blocks on the bounded channel rather than buffering without
//! limit; the kernel queue then overflows, notify reports a rescan, and the
//! scheduler sweeps the roots again. The scheduler holds one entry per
//! distinct path, so memory grows with the number of pending files, not
//! events; concurrency is a fixed number of blocking jobs.
//!
//! Readiness (`watching`, systemd `READY=1`) is announced when the jobs of
//! the first sweep (the roots and what they listed) are done, not when the
//! loop is first idle, which a steady stream of downloads would postpone
//! forever.
//!
//! Failures: a job whose action failed is retried with exponential backoff
//! ([`RETRIES`] times), counted, and reported (`--once` exits non-zero); a
//! job that panics still hands its slot back.
//!
//! Roots come and go: the folder holding each root is watched too, so a
//! root deleted and re-created, moved away or re-pointed (a symlink) is
//! noticed, logged loudly while missing, then watched again and swept.
//! Symlinked folders inside a root are followed by neither the watch nor
//! the sweep.
//!
//! Idle cost: nothing polls while every root is present. The notify thread
//! sleeps in the kernel and the runtime is single-threaded, woken only by
//! events or signals; a missing root is looked for every two seconds.

use std::collections::{HashMap, HashSet, VecDeque};
use std::os::unix::fs::MetadataExt;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{Event, EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::engine::{Counters, Engine, Outcome};
use crate::hfcache::{self, Place, Root};
use crate::quarantine::fsio;

/// Events buffered between the notify thread and the loop.
const EVENT_QUEUE: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Job {
    /// Process one path (a blob, a snapshot entry, a local-dir file).
    File(usize, PathBuf),
    /// Enumerate a directory and process what is in it.
    Dir(usize, PathBuf),
}

enum Slot {
    Queued,
    Running,
    /// Reported again while running: run once more afterwards.
    Dirty,
}

struct Scheduler {
    queue: VecDeque<Job>,
    slots: HashMap<Job, Slot>,
    running: usize,
    limit: usize,
}

impl Scheduler {
    fn push(&mut self, job: Job) {
        match self.slots.get_mut(&job) {
            None => {
                self.slots.insert(job.clone(), Slot::Queued);
                self.queue.push_back(job);
            }
            Some(slot @ Slot::Running) => *slot = Slot::Dirty,
            Some(_) => {}
        }
    }

    fn next(&mut self) -> Option<Job> {
        if self.running >= self.limit {
            return None;
        }
        let job = self.queue.pop_front()?;
        self.slots.insert(job.clone(), Slot::Running);
        self.running += 1;
        Some(job)
    }

    fn done(&mut self, job: Job) {
        self.running = self.running.saturating_sub(1);
        if let Some(Slot::Dirty) = self.slots.remove(&job) {
            self.push(job);
        }
    }

    fn idle(&self) -> bool {
        self.running == 0 && self.queue.is_empty()
    }
}

/// What one finished job reports back to the loop.
struct Done {
    job: Job,
    children: Vec<Job>,
    failed: bool,
}

/// Removes one of our own temporaries left in a `blobs/` folder by a
/// modelgate that was killed mid-quarantine; anything else is not ours.
fn remove_stale_temp(path: &Path) {
    if !path.file_name().is_some_and(fsio::is_stale_temp) {
        return;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {
            tracing::info!(path = %path.display(), "removed a temporary file left by a killed modelgate")
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove a stale temporary file")
        }
    }
}

fn run_job(engine: &Engine, job: &Job) -> (Vec<Job>, bool) {
    match job {
        Job::File(i, p) => match engine.process(*i, p) {
            Outcome::SignatureLanded(snapshot) => (vec![Job::Dir(*i, snapshot)], false),
            Outcome::Failed => (Vec::new(), true),
            _ => (Vec::new(), false),
        },
        Job::Dir(i, p) => match engine.root(*i) {
            Some(root) => (
                hfcache::enumerate(&root, p, &mut remove_stale_temp)
                    .into_iter()
                    .map(|f| Job::File(*i, f))
                    .collect(),
                false,
            ),
            None => (Vec::new(), false),
        },
    }
}

/// Runs a job so that a panic in it (a bug) still hands the job back: its
/// scheduler slot is released and the path can be processed again, instead
/// of staying `Running` until the daemon restarts.
fn guarded(job: Job, f: impl FnOnce(&Job) -> (Vec<Job>, bool)) -> Done {
    match std::panic::catch_unwind(AssertUnwindSafe(|| f(&job))) {
        Ok((children, failed)) => Done {
            job,
            children,
            failed,
        },
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(
                ?job,
                panic = msg,
                "job panicked; its slot is released and it will be retried"
            );
            Done {
                job,
                children: Vec::new(),
                failed: true,
            }
        }
    }
}

/// What the loop has to do about an event besides scheduling jobs.
#[derive(Default)]
struct EventEffects {
    /// A watched root (or the folder holding it) changed: check whether it
    /// was removed, re-created or re-pointed.
    check_roots: bool,
}

/// Turns one notify event into jobs.
fn jobs_for(roots: &[Root], event: Event, out: &mut Vec<Job>, fx: &mut EventEffects) {
    if event.need_rescan() {
        tracing::warn!("event queue overflowed; sweeping every root again");
        for (i, r) in roots.iter().enumerate() {
            out.push(Job::Dir(i, r.path.clone()));
        }
        fx.check_roots = true;
        return;
    }
    if event.paths.iter().any(|p| {
        roots
            .iter()
            .any(|r| p == &r.path || p == &r.configured || r.configured.parent() == Some(p))
    }) {
        fx.check_roots = true;
    }
    let path = match event.kind {
        // A rename reports (from, to); only the destination has content.
        EventKind::Modify(ModifyKind::Name(_)) | EventKind::Create(_) => event.paths.last(),
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => event.paths.last(),
        _ => None,
    };
    let Some(path) = path else { return };
    let Some((idx, root)) = hfcache::root_of(roots, path) else {
        return;
    };
    let place = hfcache::classify(root, path);
    if place == Place::Ignore {
        return;
    }
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return;
    };
    let ft = meta.file_type();
    if ft.is_dir() {
        out.push(Job::Dir(idx, path.clone()));
    } else if place == Place::Container {
        // A file where only directories belong (the store marker), or a
        // symlinked folder: not followed.
        if ft.is_symlink() {
            tracing::warn!(path = %path.display(), "symlinked folder in the watched root is not followed");
        }
    } else if ft.is_symlink() {
        out.push(Job::File(idx, path.clone()));
    } else if ft.is_file() && !matches!(event.kind, EventKind::Create(_)) {
        // A regular file is complete when renamed into place or closed
        // after writing; its creation alone says nothing.
        out.push(Job::File(idx, path.clone()));
    }
}

/// When a sweep of a new directory runs again.
const RESWEEP_AFTER: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(5)];

/// notify reports a new directory before it watches it (it adds the watches
/// for a batch of events after handing the batch over), so a file landing
/// in that gap is neither reported nor, if the first sweep was quicker,
/// swept. Sweeping the directory again once the watches are surely in
/// place closes the gap; files seen before are cache hits.
fn sweep_again_later(later: &mpsc::Sender<Job>, job: Job) {
    let later = later.clone();
    tokio::spawn(async move {
        for delay in RESWEEP_AFTER {
            tokio::time::sleep(delay).await;
            // A full queue means the loop is flooded; the rescan that
            // flooding triggers covers this directory too.
            if later.try_send(job.clone()).is_err() {
                return;
            }
        }
    });
}

/// A root as the loop last armed it: its resolved path and identity, or
/// missing.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Armed {
    At { path: PathBuf, ident: (u64, u64) },
    Missing,
}

fn resolve_root(root: &Root) -> Armed {
    match std::fs::canonicalize(&root.configured).and_then(|p| {
        let m = std::fs::metadata(&p)?;
        Ok((p, m))
    }) {
        Ok((path, m)) if m.is_dir() => Armed::At {
            path,
            ident: (m.dev(), m.ino()),
        },
        _ => Armed::Missing,
    }
}

fn watch_root(
    watcher: &mut notify::RecommendedWatcher,
    root: &Root,
    path: &Path,
) -> notify::Result<()> {
    if let Err(e) = watcher.watch(path, RecursiveMode::Recursive) {
        if matches!(e.kind, notify::ErrorKind::MaxFilesWatch) {
            tracing::error!(
                root = %path.display(),
                "out of inotify watches; raise fs.inotify.max_user_watches (sysctl) and restart"
            );
        }
        return Err(e);
    }
    // The folder holding the root reports the root's removal, re-creation
    // and re-pointing (when the root is a symlink), which the root's own
    // watch cannot.
    if let Some(parent) = root.configured.parent()
        && let Err(e) = watcher.watch(parent, RecursiveMode::NonRecursive)
    {
        tracing::warn!(folder = %parent.display(), error = %e, "cannot watch the folder holding a root; its re-creation will be noticed late");
    }
    Ok(())
}

fn arm(
    roots: &[Root],
    tx: mpsc::Sender<notify::Result<Event>>,
) -> notify::Result<notify::RecommendedWatcher> {
    // Symlinked folders are not followed: what they lead to is outside the
    // root, and the sweep does not enter them either.
    let config = notify::Config::default().with_follow_symlinks(false);
    let mut watcher = notify::RecommendedWatcher::new(
        move |res| {
            // Blocking here is the back-pressure described above.
            let _ = tx.blocking_send(res);
        },
        config,
    )?;
    for root in roots {
        watch_root(&mut watcher, root, &root.path)?;
    }
    Ok(watcher)
}

/// How often a missing root is looked for, and how often its absence is
/// logged again.
const MISSING_POLL: Duration = Duration::from_secs(2);
const MISSING_NAG: Duration = Duration::from_secs(60);

/// Compares every root with what is armed: a root that disappeared is
/// logged loudly (and looked for every [`MISSING_POLL`] until it is back);
/// one that reappeared, was re-created or now resolves elsewhere is watched
/// again and swept. Returns the sweeps to run.
fn check_roots(
    engine: &Engine,
    watcher: Option<&mut notify::RecommendedWatcher>,
    armed: &mut [Armed],
    nagged: &mut [Option<Instant>],
) -> Vec<Job> {
    let mut jobs = Vec::new();
    let Some(watcher) = watcher else {
        return jobs;
    };
    for (i, root) in engine.roots().iter().enumerate() {
        let (Some(was), Some(nag)) = (armed.get_mut(i), nagged.get_mut(i)) else {
            continue;
        };
        let now = resolve_root(root);
        if now == *was {
            if now == Armed::Missing && nag.is_none_or(|t| t.elapsed() >= MISSING_NAG) {
                tracing::error!(root = %root.configured.display(), "watched root is still missing; nothing there is scanned until it is back");
                *nag = Some(Instant::now());
            }
            continue;
        }
        if let Armed::At { path, .. } = &*was {
            let _ = watcher.unwatch(path);
        }
        match &now {
            Armed::Missing => {
                tracing::error!(root = %root.configured.display(), "watched root was removed or moved away; waiting for it to reappear");
                *nag = Some(Instant::now());
            }
            Armed::At { path, .. } => match watch_root(watcher, root, path) {
                Ok(()) => {
                    tracing::warn!(root = %root.configured.display(), resolved = %path.display(), "watched root is back (re-created or re-pointed); watching it again and sweeping it");
                    engine.set_root_path(i, path.clone());
                    jobs.push(Job::Dir(i, path.clone()));
                    *nag = None;
                }
                Err(e) => {
                    tracing::error!(root = %root.configured.display(), error = %e, "cannot watch the re-created root; will try again");
                    *was = Armed::Missing;
                    *nag = Some(Instant::now());
                    continue;
                }
            },
        }
        *was = now;
    }
    jobs
}

/// Tells systemd (Type=notify) that the initial sweep is done and the
/// watches are armed. A no-op outside systemd.
fn sd_notify(state: &str) {
    let Some(addr) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else {
        return;
    };
    let bytes = addr.as_encoded_bytes();
    #[cfg(target_os = "linux")]
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        if let Ok(a) = std::os::unix::net::SocketAddr::from_abstract_name(name) {
            let _ = sock.send_to_addr(state.as_bytes(), &a);
        }
        return;
    }
    let _ = bytes;
    let _ = sock.send_to(state.as_bytes(), PathBuf::from(addr));
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

/// Retries of a failed job, and the wait before each: the first waits
/// one second, the last about half a minute.
const RETRIES: u32 = 5;
fn backoff(attempt: u32, once: bool) -> Duration {
    let base = if once { 100 } else { 1000 };
    Duration::from_millis(base << attempt.min(5))
}

/// What a run did, counted by the loop.
#[derive(Debug, Default, Clone, Copy)]
pub struct LoopStats {
    /// Jobs that still failed after every retry.
    pub gave_up: u64,
}

/// Runs the sweep and, unless `once`, watches until SIGTERM/SIGINT.
pub async fn run(engine: Arc<Engine>, once: bool, jobs: usize) -> notify::Result<LoopStats> {
    let (tx, mut rx) = mpsc::channel(EVENT_QUEUE);
    let roots = engine.roots();
    let mut watcher = if once { None } else { Some(arm(&roots, tx)?) };
    let mut armed: Vec<Armed> = roots.iter().map(resolve_root).collect();
    let mut nagged: Vec<Option<Instant>> = vec![None; roots.len()];
    let mut sched = Scheduler {
        queue: VecDeque::new(),
        slots: HashMap::new(),
        running: 0,
        limit: jobs.max(1),
    };
    // The first sweep: the roots and, as they finish, what they listed.
    // Readiness is announced when this set is empty, however many new
    // downloads arrive meanwhile.
    let mut sweep: HashSet<Job> = HashSet::new();
    for (i, r) in roots.iter().enumerate() {
        let job = Job::Dir(i, r.path.clone());
        sweep.insert(job.clone());
        sched.push(job);
    }
    let mut set: JoinSet<Done> = JoinSet::new();
    let mut swept = false;
    let mut stats = LoopStats::default();
    let mut attempts: HashMap<Job, u32> = HashMap::new();
    let mut retrying = 0usize;
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let mut new_jobs = Vec::new();
    let mut next_poll = Instant::now();
    let (later_tx, mut later_rx) = mpsc::channel(EVENT_QUEUE);
    let (retry_tx, mut retry_rx) = mpsc::unbounded_channel::<Job>();
    loop {
        while let Some(job) = sched.next() {
            let engine = engine.clone();
            set.spawn_blocking(move || guarded(job, |j| run_job(&engine, j)));
        }
        if sweep.is_empty() && !swept {
            swept = true;
            let c = &engine.counters;
            tracing::info!(
                files = Counters::get(&c.files),
                scanned = Counters::get(&c.scanned),
                cached = Counters::get(&c.cached),
                warned = Counters::get(&c.warned),
                quarantined = Counters::get(&c.quarantined),
                refused = Counters::get(&c.refused),
                errors = Counters::get(&c.errors),
                "sweep finished"
            );
            if !once {
                sd_notify("READY=1\nSTATUS=watching");
                let roots: Vec<String> = engine
                    .roots()
                    .iter()
                    .map(|r| r.path.display().to_string())
                    .collect();
                tracing::info!(roots = roots.join(", "), "watching");
            }
        }
        if once && swept && sched.idle() && retrying == 0 {
            break;
        }
        let any_missing = armed.contains(&Armed::Missing);
        tokio::select! {
            ev = rx.recv(), if !once => match ev {
                Some(Ok(event)) => {
                    tracing::trace!(?event, "event");
                    let rescan = event.need_rescan();
                    let mut fx = EventEffects::default();
                    jobs_for(&engine.roots(), event, &mut new_jobs, &mut fx);
                    if fx.check_roots {
                        new_jobs.extend(check_roots(&engine, watcher.as_mut(), &mut armed, &mut nagged));
                    }
                    for j in new_jobs.drain(..) {
                        if !rescan && matches!(j, Job::Dir(..)) {
                            sweep_again_later(&later_tx, j.clone());
                        }
                        sched.push(j);
                    }
                }
                Some(Err(e)) => tracing::error!(error = %e, "watch error"),
                None => break,
            },
            _ = tokio::time::sleep_until(next_poll), if any_missing && !once => {
                next_poll = Instant::now() + MISSING_POLL;
                for j in check_roots(&engine, watcher.as_mut(), &mut armed, &mut nagged) {
                    sweep_again_later(&later_tx, j.clone());
                    sched.push(j);
                }
            }
            Some(job) = later_rx.recv() => sched.push(job),
            Some(job) = retry_rx.recv() => {
                retrying = retrying.saturating_sub(1);
                sched.push(job);
            }
            Some(res) = set.join_next(), if !set.is_empty() => {
                // `guarded` catches panics, so a join error is a cancelled
                // task (shutdown); nothing to hand back.
                let Ok(done) = res else { continue };
                let Done { job, children, failed } = done;
                sched.done(job.clone());
                if sweep.remove(&job) {
                    sweep.extend(children.iter().cloned());
                }
                if failed {
                    let n = attempts.entry(job.clone()).or_insert(0);
                    if *n < RETRIES {
                        let delay = backoff(*n, once);
                        *n += 1;
                        tracing::warn!(?job, attempt = *n, retry_in_ms = delay.as_millis() as u64, "action failed; retrying");
                        retrying += 1;
                        let tx = retry_tx.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(delay).await;
                            let _ = tx.send(job);
                        });
                    } else {
                        attempts.remove(&job);
                        stats.gave_up += 1;
                        tracing::error!(?job, "action failed {RETRIES} more times; giving up until the path changes again");
                    }
                } else {
                    attempts.remove(&job);
                }
                for c in children {
                    sched.push(c);
                }
            }
            _ = &mut shutdown => {
                tracing::info!("stopping");
                sd_notify("STOPPING=1");
                break;
            }
        }
    }
    // Let running jobs finish: a quarantine is crash-safe, but finishing is
    // cheaper than recovering.
    while set.join_next().await.is_some() {}
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_job_hands_its_slot_back() {
        let mut sched = Scheduler {
            queue: VecDeque::new(),
            slots: HashMap::new(),
            running: 0,
            limit: 1,
        };
        let job = Job::File(0, PathBuf::from("/c/x"));
        sched.push(job.clone());
        let running = sched.next().unwrap();
        let done = guarded(running, |_| panic!("bug"));
        assert!(done.failed);
        sched.done(done.job);
        assert!(sched.idle());
        // The same path can be scheduled and run again.
        sched.push(job.clone());
        assert_eq!(sched.next(), Some(job));
    }
}
