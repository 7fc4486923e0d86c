//! loadgen's allocator setting: freed memory leaves RSS when it is freed.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use kcache_loadgen::{alloc, procstat};

/// One test in this binary: mimalloc's options must be set before other
/// threads run, and a test harness runs a binary's tests on several threads.
#[test]
fn freed_pages_leave_rss_at_once() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        eprintln!("MIMALLOC_PURGE_DELAY is set; it overrides the setting under test");
        return;
    }
    // The default of `purge_delay` in mimalloc v3 (options.c): a wrong option number reads another option.
    assert_eq!(alloc::purge_delay_ms(), 1000);
    alloc::purge_freed_pages_at_once();
    assert_eq!(alloc::purge_delay_ms(), 0);

    const BLOCKS: usize = 16 * 1024;
    let rss = || procstat::rss_bytes().expect("RSS is readable on Linux");
    let before = rss();
    let blocks: Vec<Vec<u8>> = (0..BLOCKS).map(|i| vec![i as u8 | 1; 4096]).collect();
    let held = rss();
    assert!(held >= before + 56 * 1024 * 1024, "64 MiB of blocks: {before} -> {held}");
    drop(blocks);
    let after = rss();
    assert!(after + 48 * 1024 * 1024 <= held, "freeing 64 MiB left RSS at {after} from {held} (before: {before})");
}
