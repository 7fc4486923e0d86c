//! The allocator setting every loadgen process runs under.
//!
//! loadgen's reports are memory figures (RSS after sync, peak RSS, RSS per
//! replica), so the allocator must give pages back to the OS when they are
//! freed. mimalloc v3 by default keeps a freed page committed for a second and
//! purges it only when the thread that owns it next allocates; the threads that
//! decoded a first list then sit idle, and RSS after sync counted the list's
//! transient buffers: 25 to 35 MiB of growth for 10,000 compressed pods
//! against 12 to 15 MiB with an immediate purge. What purging at once costs a
//! write phase is measured in docs/ARCHITECTURE.md ("mimalloc without
//! transparent huge pages"): within the machine's run-to-run spread.
//!
//! The setting applies to every engine loadgen hosts, kube-rs's included, so
//! side-by-side memory figures stay like for like. `MIMALLOC_PURGE_DELAY` in the
//! environment still wins, so a run can measure the allocator's default.
#![allow(unsafe_code)]

/// mimalloc's `mi_option_purge_delay` (milliseconds; v3's option numbering).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Makes mimalloc return freed pages to the OS at once, unless
/// `MIMALLOC_PURGE_DELAY` is set.
///
/// Call it first thing in `main`, before any thread is started: mimalloc's
/// option setters are not thread safe.
pub fn purge_freed_pages_at_once() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: `mi_option_set` writes one option word with no synchronisation;
    // the caller runs this before starting any thread, so no allocation can
    // read the word concurrently. Option 15 is `purge_delay` in the mimalloc
    // v3 sources libmimalloc-sys builds by default (checked by
    // `freed_pages_leave_rss_at_once` in tests/alloc.rs), and 0 is one of its
    // documented values ("0 for immediate purging").
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) }
}

/// The purge delay mimalloc uses now, in milliseconds (`-1`: never purge).
// `c_long` is 64 bits here but 32 on other targets: the conversion is not useless there.
#[allow(clippy::useless_conversion)]
pub fn purge_delay_ms() -> i64 {
    // SAFETY: reads one option word; see `purge_freed_pages_at_once` for why no
    // write races with it in loadgen, which sets it before any thread starts.
    i64::from(unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) })
}
