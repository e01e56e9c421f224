//! What the benches share: single-call percentiles.

/// p50 and p99, in seconds, of 5,000 timed runs of `run` (after 500
/// untimed ones). Criterion reports means of batches; a gateway's budget
/// is about the slow calls.
pub fn percentiles(mut run: impl FnMut()) -> (f64, f64) {
    for _ in 0..500 {
        run();
    }
    let mut times: Vec<f64> = (0..5000)
        .map(|_| {
            let started = std::time::Instant::now();
            run();
            started.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], times[times.len() * 99 / 100])
}
