//! `keep_freed_memory`, in a test binary of its own without the test harness: `mallopt` must not
//! run beside other threads' allocations, and it is the main thread's heap that `ratios` uses
//! (a test harness would run the test on a thread of its own, with an arena of its own).

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn main() {
    use std::hint::black_box;

    /// Minor page faults of this process so far (field 10 of `/proc/self/stat`).
    fn minor_faults() -> u64 {
        let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
        // The command name, field 2, is in parentheses and may hold spaces.
        let after_name = &stat[stat.rfind(')').expect("a command name") + 2..];
        after_name
            .split(' ')
            .nth(7)
            .expect("field 10")
            .parse()
            .expect("a count")
    }

    /// Page faults taken by allocating, writing and freeing `bytes`.
    fn faults_of_a_fresh_buffer(bytes: usize) -> u64 {
        let before = minor_faults();
        drop(black_box(vec![1u8; bytes]));
        minor_faults() - before
    }

    const BYTES: usize = 64 << 20;
    let pages = (BYTES / 4096) as u64;
    // By default a 64 MiB block is a fresh mapping every time: every page faults. Unless the
    // environment tunes glibc's allocator, when the defaults are not what runs.
    let tuned: Vec<String> = std::env::vars()
        .map(|(name, _)| name)
        .filter(|name| name.starts_with("MALLOC_") || name == "GLIBC_TUNABLES")
        .collect();
    faults_of_a_fresh_buffer(BYTES);
    let by_default = faults_of_a_fresh_buffer(BYTES);
    match tuned.is_empty() {
        true => assert!(
            by_default > pages / 2,
            "{by_default} faults for {pages} pages"
        ),
        false => println!("the allocator is tuned by {tuned:?}: its defaults are not checked"),
    }

    assert!(difi_benches::memory::keep_freed_memory());
    faults_of_a_fresh_buffer(BYTES);
    let kept = faults_of_a_fresh_buffer(BYTES);
    assert!(kept < pages / 50, "{kept} faults for {pages} pages");
    println!("freed memory is reused: {by_default} page faults by default, {kept} after");
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn main() {
    assert!(!difi_benches::memory::keep_freed_memory());
}
