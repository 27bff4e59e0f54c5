//! `merge --redact` and `report --redact`: a database or report to share holds no host
//! name and no user's path, anywhere in the file, while every figure stays; the same key
//! gives the same ids.

mod common;

use std::path::Path;

use common::*;

/// Whether `needle` occurs anywhere in the file's bytes (free pages included).
fn file_holds(path: &Path, needle: &str) -> bool {
    let bytes = std::fs::read(path).unwrap();
    bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn a_redacted_merge_keeps_the_figures_and_loses_the_names() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a.db");
    // A real run (this machine's host name, its paths in the suite and logs) and an import
    // under a telling host name and a path in a home directory.
    let suite = threads_suite(tmp.path(), 2);
    run_ok(&["run", suite.to_str().unwrap(), "--db", a.to_str().unwrap()]);
    // llama-bench ran on a model in alice's home: its path is the model's name and identity.
    let fixture = tmp.path().join("r1.json");
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/tests/fixtures/llama-bench/r1.json"),
    )
    .unwrap()
    .replace(
        "\"model_filename\": \"",
        "\"model_filename\": \"/home/alice/models/",
    );
    assert!(text.contains("/home/alice/models/"));
    std::fs::write(&fixture, text).unwrap();
    run_ok(&[
        "import",
        fixture.to_str().unwrap(),
        "--db",
        a.to_str().unwrap(),
        "--host",
        "alice-workstation",
        "--source",
        "/home/alice/bench/r1.json",
    ]);
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    let key = tmp.path().join("key");
    std::fs::write(&key, b"a shared secret").unwrap();
    let shared = tmp.path().join("shared.db");
    let merge = |into: &Path| {
        tokbench(&[
            "merge",
            a.to_str().unwrap(),
            "--into",
            into.to_str().unwrap(),
            "--redact",
            "--redact-key",
            key.to_str().unwrap(),
        ])
        .output()
        .unwrap()
    };
    let out = merge(&shared);
    assert!(out.status.success(), "{}", stderr(&out));
    for secret in ["alice-workstation", "/home/alice", "alice"] {
        assert!(
            !file_holds(&shared, secret),
            "{secret} is in the redacted file"
        );
    }
    if hostname.len() >= 3 {
        assert!(
            !file_holds(&shared, &hostname),
            "{hostname} is in the redacted file"
        );
    }
    // Every figure is there.
    let figures = "SELECT test, quant, prefill_tps, decode_tps, n_reps FROM v_results ORDER BY test, quant, prefill_tps, decode_tps";
    assert_eq!(query(&a, figures), query(&shared, figures));
    let hosts = query(&shared, "SELECT DISTINCT host FROM v_results ORDER BY host");
    assert_eq!(hosts.len(), 2);
    assert!(
        hosts.iter().all(|h| s(h, "host").starts_with("host-")),
        "{hosts:?}"
    );
    // The same key gives the same ids; an existing destination is refused.
    let again = tmp.path().join("again.db");
    assert!(merge(&again).status.success());
    assert_eq!(
        query(&again, "SELECT DISTINCT host FROM v_results ORDER BY host"),
        hosts
    );
    let out = merge(&shared);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("new file"), "{}", stderr(&out));
    assert_eq!(integrity(&shared), "ok");

    // The report of the unredacted database, redacted with the same key: no names, the
    // hosts under the merge's ids.
    let reports = tmp.path().join("reports");
    run_ok(&[
        "report",
        "--db",
        a.to_str().unwrap(),
        "--out",
        reports.to_str().unwrap(),
        "--redact",
        "--redact-key",
        key.to_str().unwrap(),
    ]);
    for entry in std::fs::read_dir(&reports).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            for secret in ["alice-workstation", "/home/alice"] {
                assert!(!file_holds(&path, secret), "{secret} in {}", path.display());
            }
            if hostname.len() >= 3 {
                assert!(
                    !file_holds(&path, &hostname),
                    "{hostname} in {}",
                    path.display()
                );
            }
        }
    }
    let json = std::fs::read_to_string(reports.join("results.json")).unwrap();
    assert!(
        json.contains(s(&hosts[0], "host")),
        "the report's ids are the merge's"
    );
}
