//! Inputs to the parsers of this crate (suite TOML, llama-bench imports) that the fuzz
//! targets in fuzz/fuzz_targets/ (or their review) found exhausting memory or panicking;
//! each must now end in an error naming the problem.

use std::path::Path;

use tokbench_core::Suite;

fn list(n: usize) -> String {
    (1..=n).map(|i| i.to_string()).collect::<Vec<_>>().join(",")
}

/// Three engine lists of 300 values: 27 million engine settings, each a cell. Expanding
/// them took over 1 GiB (libFuzzer's out-of-memory limit) from a 3 KB file.
#[test]
fn an_engine_matrix_too_large_to_expand_is_an_error() {
    let text = format!(
        "[[model]]\nsynth = \"tiny\"\nquants = [\"Q8_0\"]\n\n[engine]\nthreads = [{0}]\nbatch = [{0}]\nubatch = [{0}]\n\n[workload]\ntests = [\"pp64\"]\n",
        list(300)
    );
    let e = Suite::from_toml(&text, Path::new("big.toml")).unwrap_err();
    assert!(e.to_string().contains("`[engine]`"), "{e}");
    assert!(e.to_string().contains("300 × 300 × 300"), "{e}");
}

/// Many tests times many depths, and a matrix whose factors are each allowed but whose
/// product is not.
#[test]
fn test_and_cell_counts_are_bounded_before_expanding() {
    let tests = (1..=1000)
        .map(|i| format!("\"pp{i}\""))
        .collect::<Vec<_>>()
        .join(",");
    let text = format!(
        "[[model]]\nsynth = \"tiny\"\nquants = [\"Q8_0\"]\n\n[workload]\ntests = [{tests}]\ndepths = [{}]\n",
        list(1000)
    );
    let e = Suite::from_toml(&text, Path::new("big.toml")).unwrap_err();
    assert!(e.to_string().contains("1000 tests × 1000 depths"), "{e}");

    let text = format!(
        "[[model]]\nsynth = \"tiny\"\nquants = [\"Q8_0\", \"Q4_0\", \"Q4_K_M\", \"Q8_0\"]\n\n[engine]\nthreads = [{}]\nbatch = [{}]\n\n[workload]\ntests = [{tests}]\n",
        list(10),
        list(10),
    );
    let e = Suite::from_toml(&text, Path::new("big.toml")).unwrap_err();
    assert!(e.to_string().contains("cells a suite may have"), "{e}");

    // Below the bound, the same shape still expands.
    let text = "[[model]]\nsynth = \"tiny\"\nquants = [\"Q8_0\"]\n\n[engine]\nthreads = [1,2]\nbatch = [64,128]\n\n[workload]\ntests = [\"pp8\", \"tg8\"]\ndepths = [0, 16]\n";
    let suite = Suite::from_toml(text, Path::new("ok.toml")).unwrap();
    assert_eq!(suite.cells().len(), 2 * 2 * 2 * 2);
}
