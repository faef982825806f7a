//! How the benchmark process gets its memory.
//!
//! glibc's allocator hands out blocks above its mmap threshold (128 KiB to 32 MiB, adjusted as
//! blocks are freed) as fresh mappings, and returns freed memory at the top of its heap to the
//! kernel once more than twice that threshold is free. Both make the next call of a function
//! take fresh pages, which the kernel zeroes on first touch. What a timed call pays for that
//! depends on the process's history, not on the code timed: the tape's gmm gradient read 3.4
//! times its primal in most `ratios` runs and 7 to 8.7 times in runs where lse and ode came
//! before it (about 765,000 page faults against 5,000 to 30,000). conv at 512 × 512 × 23,
//! whose buffers of 48 to 96 MB are always fresh mappings, pays it on every call: its gradient
//! spent about 0.37 s a call in the kernel against 0.1 s for its primal (0.4 s in all).
//!
//! [`keep_freed_memory`] makes the allocator serve every block from its heap and never give
//! the heap back, so each call after the first reuses memory an earlier call freed, as a
//! caching allocator (jemalloc, mimalloc) does.

/// Asks the C allocator to keep freed memory for reuse: no fresh mappings, no trimming of its
/// heap. Returns whether it could (glibc on Linux only; elsewhere nothing changes). Memory
/// freed is never returned to the system, so the process keeps its peak size.
///
/// Call it at the start of `main`, before any thread exists: glibc documents `mallopt` as
/// unsafe to run beside other allocations.
///
/// ```no_run
/// if !difi_benches::memory::keep_freed_memory() {
///     eprintln!("the allocator returns freed memory to the system");
/// }
/// ```
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `mallopt` only sets two of the allocator's parameters. It is documented as
        // not safe beside concurrent allocation, so callers run it before starting threads
        // (the `ratios` binary at the top of `main`; its test in a binary of its own).
        unsafe {
            libc::mallopt(libc::M_MMAP_MAX, 0) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// `criterion_main!` for difi's benches: [`keep_freed_memory`] first, as the `ratios` binary
/// does, so criterion's figures and the report's are measured alike.
///
/// ```no_run
/// use criterion::{criterion_group, Criterion};
///
/// fn square(c: &mut Criterion) {
///     c.bench_function("square", |b| b.iter(|| std::hint::black_box(3.0_f64).powi(2)));
/// }
/// criterion_group!(benches, square);
/// difi_benches::criterion_main_keeping_freed_memory!(benches);
/// ```
#[macro_export]
macro_rules! criterion_main_keeping_freed_memory {
    ($($group:path),+ $(,)?) => {
        fn main() {
            // First, before criterion starts any thread.
            $crate::memory::keep_freed_memory();
            $($group();)+
            ::criterion::Criterion::default()
                .configure_from_args()
                .final_summary();
        }
    };
}
