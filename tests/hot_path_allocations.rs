//! The project's own per-slice steps (preprocess, classifier head, YOLO decode + NMS) allocate
//! nothing after construction. Counted per thread with a wrapping global allocator, so other test
//! threads do not disturb the count. The engine is not covered here: what tract allocates inside
//! is measured and reported, not forbidden (issue 6).
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use pe_sentinel::model::Manifest;
use pe_sentinel::postprocess::{ClassifierHead, Detections, YoloDecoder};
use pe_sentinel::preprocess::{Pixels, Preprocessor, SliceView};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards every call unchanged to the system allocator; the counter is a thread-local
// `Cell<usize>` with a const initializer, so touching it never allocates or recurses.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

fn manifest(name: &str) -> Manifest {
    Manifest::load(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)).unwrap()
}

#[test]
fn per_slice_steps_do_not_allocate() {
    let c = manifest("tiny-classifier.toml");
    let d = manifest("tiny-detector.toml");
    let mut pre_c = Preprocessor::new(&c);
    let mut pre_d = Preprocessor::new(&d);
    let head = ClassifierHead::new(&c).unwrap();
    let mut dec = YoloDecoder::new(&d).unwrap();
    let mut in_c = vec![0.0; pre_c.input_len()];
    let mut in_d = vec![0.0; pre_d.input_len()];
    let mut dets = Detections::default();
    let hu: Vec<f32> = (0..512 * 512).map(|i| (i % 1500) as f32 - 1000.0).collect();
    let g16: Vec<u16> = (0..300 * 200).map(|i| (i * 37 % 65536) as u16).collect();
    // Every cell above the threshold, so decode, sorting and NMS all do real work.
    let s32 = vec![2.0f32; dec.head_len(0).unwrap()];
    let s16 = vec![2.0f32; dec.head_len(1).unwrap()];

    let before = allocations();
    for _ in 0..3 {
        pre_c.run(SliceView { width: 512, height: 512, pixels: Pixels::Hu(&hu) }, &mut in_c).unwrap();
        let p = head.p_positive(&[0.3, 0.7]).unwrap();
        assert!(p > 0.6);
        let lb = pre_d.run(SliceView { width: 300, height: 200, pixels: Pixels::Gray16(&g16) }, &mut in_d).unwrap();
        dec.decode([&s32[..], &s16[..]], &lb, &mut dets).unwrap();
        assert!(!dets.boxes.is_empty());
    }
    assert_eq!(allocations() - before, 0);
    // The counter does see allocations on this thread.
    let probe: Vec<u8> = Vec::with_capacity(1);
    assert!(allocations() > before, "{}", probe.capacity());
}

/// The verdict step (fusion + series rule) and the budget telemetry allocate nothing per slice
/// once the series is known (its first slice claims a pre-allocated slot).
#[test]
fn verdict_and_budget_steps_do_not_allocate() {
    use pe_sentinel::budget::{BudgetConfig, BudgetTracker};
    use pe_sentinel::verdict::fusion::{fuse, FusionConfig, FusionPolicy, SliceScores};
    use pe_sentinel::verdict::series::{SeriesConfig, SeriesTracker, SliceObservation};

    let fusion = FusionConfig::new(FusionPolicy::Either, 0.5);
    let mut tracker = SeriesTracker::new(SeriesConfig::default());
    let mut budget = BudgetTracker::new(BudgetConfig { budget_ms: 1, slow_window: 100, slow_miss_fraction: 0.05 });
    let obs =
        |k: i32, suspicious: bool| SliceObservation { instance: k, suspicious, p: 0.2, boxes: 0, max_confidence: 0.0 };
    // Warm-up: the series' first slice takes its slot.
    let first = tracker.observe("1.2.3", obs(0, false), 0);
    assert!(first.is_empty());

    let before = allocations();
    let mut slow_seen = false;
    for k in 1..200 {
        let s = SliceScores { p: if k % 10 == 0 { 0.9 } else { 0.1 }, boxes: 0, max_confidence: 0.0 };
        let v = fuse(&fusion, &s);
        let events = tracker.observe("1.2.3", obs(k, v.suspicious), k as u64);
        // Suspicious slices are 10 apart: never 3 in 5, so no event (and no event string).
        assert!(events.is_empty());
        let (missed, change) = budget.record(5_000);
        assert!(missed);
        slow_seen |= change.is_some();
    }
    assert_eq!(allocations() - before, 0);
    assert!(slow_seen && budget.is_slow());
}
