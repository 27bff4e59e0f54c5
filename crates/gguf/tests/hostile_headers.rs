//! Hand-built hostile GGUF headers (a few hundred bytes each): absurd counts, lengths and
//! dimensions must end in an error naming the field, before anything sized by them is
//! allocated. A counting global allocator measures each parse's peak heap use on its own
//! thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Read;

use tokbench_gguf::reader::MAX_METADATA_ITEMS;
use tokbench_gguf::{parse_bytes, parse_reader, GgufError, GgufFile};

/// Counts the bytes live on the current thread and their peak.
struct Counting;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn grew(n: usize) {
    let _ = LIVE.try_with(|live| {
        live.set(live.get().saturating_add(n));
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(live.get())));
    });
}

fn shrank(n: usize) {
    let _ = LIVE.try_with(|live| live.set(live.get().saturating_sub(n)));
}

// SAFETY: every call is forwarded to `System` unchanged; the counters only observe.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which `System` shares.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` with `layout` (every allocation goes through here).
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`; `new_size` is the caller's, checked by `System`.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            shrank(layout.size());
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Most heap a hostile header may cost: the reader's small preallocations, never a
/// count read from the file.
const SMALL: usize = 1 << 20;

/// Runs `f` and returns its result with the peak heap it added on this thread.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let out = f();
    (out, PEAK.with(Cell::get) - base)
}

/// Parses `bytes`, expecting an error, and checks the parse stayed small.
fn hostile(bytes: &[u8]) -> GgufError {
    let (result, peak) = peak_of(|| parse_bytes(bytes));
    assert!(
        peak < SMALL,
        "peak heap {peak} bytes for a {}-byte file",
        bytes.len()
    );
    result.expect_err("a hostile header must not parse")
}

/// Little-endian GGUF builder.
struct Raw(Vec<u8>);

impl Raw {
    fn header(tensors: u64, kvs: u64) -> Raw {
        let mut r = Raw(b"GGUF".to_vec());
        r.u32(3).u64(tensors).u64(kvs);
        r
    }
    fn u32(&mut self, v: u32) -> &mut Raw {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Raw {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn str(&mut self, s: &str) -> &mut Raw {
        self.u64(s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
        self
    }
    fn pad(&mut self, n: usize) -> &mut Raw {
        self.0.resize(self.0.len() + n, 0);
        self
    }
    fn tensor(&mut self, name: &str, dims: &[u64], type_id: u32, offset: u64) -> &mut Raw {
        self.str(name).u32(dims.len() as u32);
        for &d in dims {
            self.u64(d);
        }
        self.u32(type_id).u64(offset)
    }
}

const U8: u32 = 0;
const STRING: u32 = 8;
const ARRAY: u32 = 9;

#[test]
fn huge_tensor_count_is_rejected_by_the_bytes_left() {
    let mut raw = Raw::header(1 << 60, 0);
    raw.pad(200);
    let e = hostile(&raw.0);
    assert!(
        matches!(e, GgufError::CountTooLarge { offset: 8, count, .. } if count == 1 << 60),
        "{e}"
    );
    assert!(e.to_string().contains("tensor infos"), "{e}");
}

#[test]
fn huge_kv_count_is_rejected_by_the_bytes_left() {
    let mut raw = Raw::header(0, u64::MAX);
    raw.pad(200);
    let e = hostile(&raw.0);
    assert!(
        matches!(e, GgufError::CountTooLarge { offset: 16, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("metadata key-value pairs"), "{e}");
}

#[test]
fn array_of_2_pow_60_items_is_rejected_naming_the_key() {
    for elem in [U8, STRING, ARRAY] {
        let mut raw = Raw::header(0, 1);
        raw.str("tokenizer.ggml.tokens")
            .u32(ARRAY)
            .u32(elem)
            .u64(1 << 60);
        raw.pad(300);
        let e = hostile(&raw.0);
        assert!(
            matches!(e, GgufError::CountTooLarge { count, .. } if count == 1 << 60),
            "{e}"
        );
        assert!(e.to_string().contains("'tokenizer.ggml.tokens'"), "{e}");
    }
}

#[test]
fn nested_array_with_a_huge_count_is_rejected() {
    let mut raw = Raw::header(0, 1);
    raw.str("k").u32(ARRAY).u32(ARRAY).u64(2);
    raw.u32(U8).u64(1).pad(1);
    raw.u32(U8).u64(1 << 60);
    raw.pad(300);
    let e = hostile(&raw.0);
    assert!(matches!(e, GgufError::CountTooLarge { .. }), "{e}");
    assert!(e.to_string().contains("item 1 of value of 'k'"), "{e}");
}

#[test]
fn string_of_2_pow_63_bytes_is_rejected_naming_the_field() {
    // As a key.
    let mut raw = Raw::header(0, 1);
    raw.u64(1 << 63).pad(300);
    let e = hostile(&raw.0);
    assert!(
        matches!(e, GgufError::Truncated { offset: 32, needed, .. } if needed == 1 << 63),
        "{e}"
    );
    assert!(e.to_string().contains("key of metadata pair 0"), "{e}");

    // As a value.
    let mut raw = Raw::header(0, 1);
    raw.str("general.name").u32(STRING).u64(1 << 63).pad(300);
    let e = hostile(&raw.0);
    assert!(
        matches!(e, GgufError::Truncated { needed, .. } if needed == 1 << 63),
        "{e}"
    );
    assert!(e.to_string().contains("value of 'general.name'"), "{e}");

    // As a tensor name.
    let mut raw = Raw::header(1, 0);
    raw.u64(1 << 63).pad(300);
    let e = hostile(&raw.0);
    assert!(e.to_string().contains("name of tensor 0"), "{e}");
}

#[test]
fn absurd_tensor_dims_are_rejected_naming_the_tensor() {
    let cases: [&[u64]; 4] = [
        // Product overflows u64.
        &[1 << 32, 1 << 32, 1 << 32, 1 << 32],
        // Product fits u64 but not ggml's int64_t.
        &[1 << 32, 1 << 32],
        // One dimension past int64_t, times zero.
        &[u64::MAX, 0],
        &[0, u64::MAX],
    ];
    for dims in cases {
        let mut raw = Raw::header(1, 0);
        raw.tensor("blk.0.attn_q.weight", dims, 0, 0).pad(300);
        let e = hostile(&raw.0);
        assert!(
            matches!(&e, GgufError::InvalidShape { reason, .. } if reason.contains("overflows")),
            "{dims:?}: {e}"
        );
        assert!(e.to_string().contains("'blk.0.attn_q.weight'"), "{e}");
    }

    // Fits int64_t as elements, but the byte size of an f32 tensor does not fit u64.
    let mut raw = Raw::header(1, 0);
    raw.tensor("w", &[1 << 62], 0, 0).pad(300);
    let e = hostile(&raw.0);
    assert!(matches!(e, GgufError::InvalidShape { .. }), "{e}");

    // Plausible dims whose data lies far past the end of the file.
    let mut raw = Raw::header(1, 0);
    raw.tensor("w", &[1 << 20, 1 << 20], 0, 0).pad(300);
    let e = hostile(&raw.0);
    assert!(matches!(e, GgufError::TensorOutOfBounds { .. }), "{e}");
    assert!(e.to_string().contains("'w'"), "{e}");

    let mut raw = Raw::header(1, 0);
    raw.tensor("w", &[1, 1, 1, 1, 1], 0, 0).pad(300);
    assert!(matches!(
        hostile(&raw.0),
        GgufError::TooManyDims { n_dims: 5, .. }
    ));
    let mut raw = Raw::header(1, 0);
    raw.tensor("w", &[], 0, 0).pad(300);
    raw.0[24 + 8 + 1..24 + 8 + 1 + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(hostile(&raw.0), GgufError::TooManyDims { .. }));
}

/// The header bytes, then zeros for as long as anyone reads.
fn endless(header: &[u8]) -> impl Read + '_ {
    header.chain(std::io::repeat(0))
}

/// `parse_reader` trusts the size it is given only as a bound: a reader that claims a
/// 4 EiB file still never makes the reader allocate by a count it reads.
#[test]
fn a_lying_file_size_still_bounds_nothing_by_the_counts() {
    let lie = 1 << 62;

    // 2^40 tensors "fit" in the claimed size: they are read one by one until a dimension
    // count is out of range, with only a capped preallocation.
    let raw = Raw::header(1 << 40, 0);
    let (result, peak) = peak_of(|| parse_reader(endless(&raw.0), lie));
    let e = result.expect_err("zeros are not a tensor table");
    assert!(peak < SMALL, "peak {peak}");
    assert!(e.to_string().contains("tensor"), "{e}");

    // A string length that fits the claimed size but not the string limit.
    let mut raw = Raw::header(0, 1);
    raw.str("k").u32(STRING).u64(1 << 40);
    let (result, peak) = peak_of(|| parse_reader(endless(&raw.0), lie));
    let e = result.expect_err("over the string limit");
    assert!(peak < SMALL, "peak {peak}");
    assert!(matches!(e, GgufError::OverLimit { .. }), "{e}");
    assert!(e.to_string().contains("'k'"), "{e}");

    // A reader that ends long before the claimed size.
    let raw = Raw::header(1 << 40, 0);
    let (result, peak) = peak_of(|| parse_reader(&raw.0[..], lie));
    assert!(peak < SMALL, "peak {peak}");
    assert!(matches!(result, Err(GgufError::Read { .. })), "{result:?}");
}

/// Each array item is a 32-byte value in memory from as little as one byte of file: the
/// total over all arrays is capped, checked before the items are decoded.
#[test]
fn metadata_items_are_capped_in_total() {
    // One outer item, then an inner array of exactly the per-array limit: one item too many
    // in total, so the inner array is refused before any of its items is read.
    let mut raw = Raw::header(0, 1);
    raw.str("k").u32(ARRAY).u32(ARRAY).u64(1);
    raw.u32(U8).u64(MAX_METADATA_ITEMS);
    let (result, peak) = peak_of(|| parse_reader(endless(&raw.0), 1 << 30));
    let e = result.expect_err("over the total");
    assert!(peak < SMALL, "peak {peak}");
    assert!(
        matches!(e, GgufError::MetadataTooLarge { count, limit, .. }
            if count == MAX_METADATA_ITEMS && limit == MAX_METADATA_ITEMS),
        "{e}"
    );
    assert!(e.to_string().contains("'k'"), "{e}");
}

#[test]
fn a_well_formed_small_file_still_parses_under_the_counting_allocator() {
    let mut raw = Raw::header(1, 2);
    raw.str("general.architecture").u32(STRING).str("llama");
    raw.str("tokenizer.ggml.tokens")
        .u32(ARRAY)
        .u32(STRING)
        .u64(2);
    raw.str("a").str("b");
    raw.tensor("w", &[4, 2], 0, 0);
    let data_offset = raw.0.len().div_ceil(32) * 32;
    raw.0.resize(data_offset + 32, 0);
    let (file, peak): (Result<GgufFile, _>, usize) = peak_of(|| parse_bytes(&raw.0));
    let file = file.unwrap();
    assert!(peak < SMALL, "peak {peak}");
    assert_eq!(file.get_array_len("tokenizer.ggml.tokens"), Some(2));
    assert_eq!(file.tensors[0].n_bytes(), 32);
}
