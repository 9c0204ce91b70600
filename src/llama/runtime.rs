//! Process-wide CPU settings for the training and benchmark binaries, applied once at start-up
//! before any thread exists. Measured with `llama_bench` on 2 cores (tiny preset, Nexus, 1
//! thread): 18.9 ms/step with glibc's default allocator settings, 15.3 ms with the ones below.

/// Threads for Candle's matrix products and element-wise kernels, and for the fused kernels:
/// `threads` if given, otherwise `RAYON_NUM_THREADS` if set, otherwise every available core.
/// The choice is written to `RAYON_NUM_THREADS`, because Candle looks the count up on every
/// matrix product and, when the variable is unset, parses `/proc/cpuinfo` to find it
/// (`../shared/measurements/llama-cpu-profile.md`: 7% of a step).
///
/// On glibc it also keeps large buffers in the heap: by default every allocation over 128 KiB
/// is a fresh `mmap`, so each step's activations page-fault in anew (4-8% of a tiny step).
/// Returns the thread count.
pub fn configure_cpu(threads: Option<usize>) -> usize {
    let from_env = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0);
    let n = threads.or(from_env).unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    // Called before any thread starts, so no other thread reads the environment meanwhile.
    std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning parameters; both values are in range.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
    n
}
