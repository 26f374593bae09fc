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
//! Idle cost: nothing polls. The notify thread sleeps in the kernel and the
//! runtime is single-threaded, woken only by events or signals.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{Event, EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::engine::{Counters, Engine, Outcome};
use super::hf_cache::{self, Place};

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

/// Turns one notify event into jobs.
fn jobs_for(engine: &Engine, event: Event, out: &mut Vec<Job>) {
    if event.need_rescan() {
        tracing::warn!("event queue overflowed; sweeping every root again");
        for (i, r) in engine.roots.iter().enumerate() {
            out.push(Job::Dir(i, r.path.clone()));
        }
        return;
    }
    let path = match event.kind {
        // A rename reports (from, to); only the destination has content.
        EventKind::Modify(ModifyKind::Name(_)) | EventKind::Create(_) => event.paths.last(),
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => event.paths.last(),
        _ => None,
    };
    let Some(path) = path else { return };
    let Some((idx, root)) = hf_cache::root_of(&engine.roots, path) else {
        return;
    };
    let place = hf_cache::classify(root, path);
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
        // A file where only directories belong (the store marker).
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

fn arm(
    engine: &Engine,
    tx: mpsc::Sender<notify::Result<Event>>,
) -> notify::Result<notify::RecommendedWatcher> {
    let mut watcher = notify::recommended_watcher(move |res| {
        // Blocking here is the back-pressure described above.
        let _ = tx.blocking_send(res);
    })?;
    for root in &engine.roots {
        if let Err(e) = watcher.watch(&root.path, RecursiveMode::Recursive) {
            if matches!(e.kind, notify::ErrorKind::MaxFilesWatch) {
                tracing::error!(
                    root = %root.path.display(),
                    "out of inotify watches; raise fs.inotify.max_user_watches (sysctl) and restart"
                );
            }
            return Err(e);
        }
    }
    Ok(watcher)
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

/// Runs the sweep and, unless `once`, watches until SIGTERM/SIGINT.
pub async fn run(engine: Arc<Engine>, once: bool, jobs: usize) -> notify::Result<()> {
    let (tx, mut rx) = mpsc::channel(EVENT_QUEUE);
    let _watcher = if once { None } else { Some(arm(&engine, tx)?) };
    let mut sched = Scheduler {
        queue: VecDeque::new(),
        slots: HashMap::new(),
        running: 0,
        limit: jobs.max(1),
    };
    for (i, r) in engine.roots.iter().enumerate() {
        sched.push(Job::Dir(i, r.path.clone()));
    }
    let mut set: JoinSet<(Job, Vec<Job>)> = JoinSet::new();
    let mut swept = false;
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let mut new_jobs = Vec::new();
    let (later_tx, mut later_rx) = mpsc::channel(EVENT_QUEUE);
    loop {
        while let Some(job) = sched.next() {
            let engine = engine.clone();
            set.spawn_blocking(move || {
                let children = match &job {
                    Job::File(i, p) => match engine.process(*i, p) {
                        Outcome::SignatureLanded(snapshot) => vec![Job::Dir(*i, snapshot)],
                        _ => Vec::new(),
                    },
                    Job::Dir(i, p) => match engine.roots.get(*i) {
                        Some(root) => hf_cache::enumerate(root, p)
                            .into_iter()
                            .map(|f| Job::File(*i, f))
                            .collect(),
                        None => Vec::new(),
                    },
                };
                (job, children)
            });
        }
        if sched.idle() && !swept {
            swept = true;
            let c = &engine.counters;
            tracing::info!(
                files = Counters::get(&c.files),
                scanned = Counters::get(&c.scanned),
                cached = Counters::get(&c.cached),
                warned = Counters::get(&c.warned),
                quarantined = Counters::get(&c.quarantined),
                errors = Counters::get(&c.errors),
                "sweep finished"
            );
            if once {
                return Ok(());
            }
            sd_notify("READY=1\nSTATUS=watching");
            let roots: Vec<String> = engine
                .roots
                .iter()
                .map(|r| r.path.display().to_string())
                .collect();
            tracing::info!(roots = roots.join(", "), "watching");
        }
        tokio::select! {
            ev = rx.recv(), if !once => match ev {
                Some(Ok(event)) => {
                    tracing::trace!(?event, "event");
                    let rescan = event.need_rescan();
                    jobs_for(&engine, event, &mut new_jobs);
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
            Some(job) = later_rx.recv() => sched.push(job),
            Some(res) = set.join_next(), if !set.is_empty() => {
                match res {
                    Ok((job, children)) => {
                        sched.done(job);
                        for c in children {
                            sched.push(c);
                        }
                    }
                    Err(e) => {
                        // A panicking job is a bug; the slot is lost but the
                        // daemon keeps running.
                        sched.running = sched.running.saturating_sub(1);
                        tracing::error!(error = %e, "job failed");
                    }
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
    Ok(())
}
