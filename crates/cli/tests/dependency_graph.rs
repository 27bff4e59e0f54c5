//! The crate graph stays as the architecture draws it: `core` depends on none of ours,
//! `store` and `report` never on `runner`, `runner` never on `store`, and only `cli`
//! wires everything. Read from each crate's Cargo.toml, so a new edge fails here.

use std::collections::BTreeMap;
use std::path::Path;

/// Which of our crates each crate may depend on (normal dependencies).
const ALLOWED: &[(&str, &[&str])] = &[
    ("core", &[]),
    ("gguf", &["tokbench-core"]),
    ("engine", &["tokbench-core"]),
    ("telemetry", &["tokbench-core"]),
    ("store", &["tokbench-core"]),
    ("report", &["tokbench-core"]),
    (
        "runner",
        &[
            "tokbench-core",
            "tokbench-telemetry",
            "tokbench-gguf",
            "tokbench-engine",
        ],
    ),
];

fn our_deps(manifest: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(manifest).unwrap();
    let doc: toml::Table = toml::from_str(&text).unwrap();
    let deps = doc
        .get("dependencies")
        .and_then(|d| d.as_table())
        .cloned()
        .unwrap_or_default();
    deps.keys()
        .filter(|k| k.starts_with("tokbench"))
        .cloned()
        .collect()
}

#[test]
fn crates_depend_only_on_what_the_architecture_allows() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut seen = 0;
    for entry in std::fs::read_dir(crates).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let manifest = entry.path().join("Cargo.toml");
        if name == "cli" || !manifest.exists() {
            continue;
        }
        let ok = allowed.get(name.as_str()).unwrap_or_else(|| {
            panic!("crate `{name}` is not in the dependency rules of this test")
        });
        for dep in our_deps(&manifest) {
            assert!(
                ok.contains(&dep.as_str()),
                "crates/{name} must not depend on {dep}"
            );
        }
        seen += 1;
    }
    assert!(
        seen >= 5,
        "found only {seen} crates under {}",
        crates.display()
    );
}

/// The features cargo resolves for `tokbench-engine` when building `tokbench`, with the
/// given dependency edges (`normal,build`: what `cargo build` compiles; `all`: tests too).
fn engine_features(edges: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = std::process::Command::new(env!("CARGO"))
        .current_dir(&root)
        .args(["tree", "--offline", "-p", "tokbench", "-e", edges])
        .args(["-i", "tokbench-engine", "-f", "{p} [{f}]", "--depth", "0"])
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn fault_injection_is_in_the_tests_build_and_not_in_the_product() {
    let product = engine_features("normal,build");
    assert!(product.contains("llama"), "{product}");
    assert!(!product.contains("fault-injection"), "{product}");
    let tests = engine_features("all");
    assert!(tests.contains("fault-injection"), "{tests}");
}
