//! The powermetrics plist parser on captured output (see `fixtures/README.md`). Line
//! numbers in comments are lines of the fixture file named in the test.

use std::time::{Duration, SystemTime};

use tokbench_telemetry::parse::powermetrics::{
    next_document, parse_sample, parse_stream, PowermetricsError, Truncation,
};

const GPU_5: &[u8] = include_bytes!("fixtures/powermetrics/m4pro_15.5_gpu_power_5_samples.plist");
const GPU_TRUNCATED: &[u8] =
    include_bytes!("fixtures/powermetrics/m4pro_15.5_gpu_power_truncated.plist");
const M1_CPU: &[u8] = include_bytes!("fixtures/powermetrics/m1_14.3_cpu_power.plist");
const M4_ALL: &[u8] = include_bytes!("fixtures/powermetrics/m4pro_26_tasks_cpu_gpu.plist");

fn at(unix_s: u64) -> Option<SystemTime> {
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(unix_s))
}

#[test]
fn gpu_power_stream_reads_all_five_samples() {
    let stream = parse_stream(GPU_5).unwrap();
    assert_eq!(stream.truncated, None);
    assert_eq!(stream.samples.len(), 5);

    let first = &stream.samples[0];
    assert_eq!(first.elapsed_ns, Some(5_004_758_375)); // line 6
    assert_eq!(first.hw_model.as_deref(), Some("Mac16,8")); // line 7
    assert_eq!(first.os_build.as_deref(), Some("24F74")); // line 8
    assert_eq!(first.timestamp, at(1_751_778_915)); // line 11: 2025-07-06T05:15:15Z
    let gpu = first.gpu.as_ref().unwrap();
    assert_eq!(gpu.freq_mhz, Some(426.525)); // line 14
    assert_eq!(gpu.idle_ratio, Some(0.982517)); // lines 16 and 252 (the key is there twice)
    assert!((gpu.active_ratio().unwrap() - 0.017483).abs() < 1e-9);
    assert_eq!(gpu.energy_mj, Some(19.0)); // line 253

    let last = &stream.samples[4];
    assert_eq!(last.elapsed_ns, Some(5_009_178_500)); // line 1030
    assert_eq!(last.timestamp, at(1_751_778_936)); // line 1035: 2025-07-06T05:15:36Z
    let gpu = last.gpu.as_ref().unwrap();
    assert_eq!(gpu.freq_mhz, Some(458.421)); // line 1038
    assert_eq!(gpu.idle_ratio, Some(0.960673)); // line 1040
    assert_eq!(gpu.energy_mj, Some(126.0)); // line 1277
}

#[test]
fn gpu_power_only_capture_has_no_processor_figures() {
    // The gpu_power sampler alone prints no `processor` dictionary: None, not zeros.
    let stream = parse_stream(GPU_5).unwrap();
    assert!(stream.samples.iter().all(|s| s.processor.is_none()));
}

#[test]
fn truncated_last_document_is_reported_not_fatal() {
    let stream = parse_stream(GPU_TRUNCATED).unwrap();
    assert_eq!(stream.samples.len(), 4);
    assert_eq!(
        stream.truncated,
        Some(Truncation {
            index: 4,
            offset: 28_406,
            len: 3_000
        })
    );
    // The four complete ones are the same as in the whole capture.
    let whole = parse_stream(GPU_5).unwrap();
    assert_eq!(stream.samples[..], whole.samples[..4]);
    assert_eq!(
        stream.samples[3].gpu.as_ref().unwrap().energy_mj,
        Some(146.0)
    ); // line 1021
}

#[test]
fn truncated_single_document_gives_no_samples_and_a_truncation() {
    let cut = &M1_CPU[..M1_CPU.len() / 2];
    let stream = parse_stream(cut).unwrap();
    assert!(stream.samples.is_empty());
    assert_eq!(stream.truncated.unwrap().index, 0);
    assert!(matches!(
        parse_sample(cut),
        Err(PowermetricsError::Incomplete {
            index: 0,
            offset: 0
        })
    ));
}

#[test]
fn truncation_before_the_last_document_is_an_error() {
    // The cut capture followed by a whole one: the cut document is no longer the last.
    let mut bytes = GPU_TRUNCATED.to_vec();
    bytes.push(0);
    bytes.extend_from_slice(M1_CPU);
    let err = parse_stream(&bytes).unwrap_err();
    assert!(matches!(
        err,
        PowermetricsError::Incomplete {
            index: 4,
            offset: 28_406
        }
    ));
    assert_eq!(
        err.to_string(),
        "document 4 at byte 28406 ends before its </plist>"
    );
}

#[test]
fn m1_cpu_power_sample() {
    let sample = parse_sample(M1_CPU).unwrap();
    assert_eq!(sample.elapsed_ns, Some(5_004_766_125)); // line 6
    assert_eq!(sample.hw_model.as_deref(), Some("MacBookAir10,1")); // line 7
    assert_eq!(sample.os_build.as_deref(), Some("23D56")); // line 8
    assert_eq!(sample.timestamp, at(1_716_736_375)); // line 11: 2024-05-26T15:12:55Z
    let p = sample.processor.unwrap();
    assert_eq!(p.cpu_energy_mj, Some(3704.0)); // line 616
    assert_eq!(p.cpu_power_mw, Some(740.095)); // line 618
    assert_eq!(p.gpu_energy_mj, Some(149.0)); // line 620
    assert_eq!(p.gpu_power_mw, Some(29.7716)); // line 622
    assert_eq!(p.ane_energy_mj, Some(0.0)); // line 624: printed as 0, so 0
    assert_eq!(p.ane_power_mw, Some(0.0)); // line 626
    assert_eq!(p.combined_power_mw, Some(769.866)); // line 628
                                                    // No gpu_power sampler in this capture.
    assert_eq!(sample.gpu, None);
}

#[test]
fn m4_macos26_sample_with_every_sampler() {
    let stream = parse_stream(M4_ALL).unwrap();
    assert_eq!(stream.samples.len(), 1);
    let sample = &stream.samples[0];
    assert_eq!(sample.elapsed_ns, Some(1_021_537_791)); // line 6
    assert_eq!(sample.os_build.as_deref(), Some("25C56")); // line 8
    assert_eq!(sample.timestamp, at(1_768_069_833)); // line 11: 2026-01-10T18:30:33Z
    let p = sample.processor.as_ref().unwrap();
    assert_eq!(p.cpu_energy_mj, Some(372.0)); // line 5841
    assert_eq!(p.cpu_power_mw, Some(364.157)); // line 5843
    assert_eq!(p.gpu_energy_mj, Some(790.0)); // line 5845
    assert_eq!(p.gpu_power_mw, Some(773.344)); // line 5847
    assert_eq!(p.combined_power_mw, Some(1137.5)); // line 5853
    let gpu = sample.gpu.as_ref().unwrap();
    assert_eq!(gpu.freq_mhz, Some(338.0)); // line 5857
    assert_eq!(gpu.idle_ratio, Some(0.558129)); // line 5859
                                                // The gpu_power sampler's own count (line 6094) differs from processor.gpu_energy.
    assert_eq!(gpu.energy_mj, Some(784.0));
}

#[test]
fn next_document_splits_the_live_stream() {
    let (doc, used) = next_document(GPU_5).unwrap();
    assert_eq!(used, 6_977); // the first NUL is at byte 6976
    assert_eq!(
        parse_sample(doc).unwrap(),
        parse_stream(GPU_5).unwrap().samples[0]
    );
    // The last document has no NUL after it: a live reader keeps waiting.
    assert_eq!(next_document(&GPU_5[28_406..]), None);
}

#[test]
fn garbage_is_an_error_that_names_the_document() {
    let err = parse_stream(b"powermetrics: must be invoked as the superuser\n").unwrap_err();
    assert!(matches!(
        err,
        PowermetricsError::NotPlist {
            index: 0,
            offset: 0,
            ..
        }
    ));
    assert!(err
        .to_string()
        .starts_with("document 0 at byte 0 is not a plist"));

    // A good document, then garbage: the second one is named.
    let mut bytes = M1_CPU.to_vec();
    bytes.extend_from_slice(b"\0\x7fELF\x02\x01");
    assert!(matches!(
        parse_stream(&bytes).unwrap_err(),
        PowermetricsError::NotPlist { index: 1, .. }
    ));
}

#[test]
fn empty_input_is_an_error() {
    assert!(matches!(parse_stream(b""), Err(PowermetricsError::Empty)));
    assert!(matches!(
        parse_stream(b"\0\n\0 "),
        Err(PowermetricsError::Empty)
    ));
    assert!(matches!(parse_sample(b"\n"), Err(PowermetricsError::Empty)));
}

#[test]
fn complete_but_malformed_xml_is_an_error() {
    let err =
        parse_sample(b"<?xml version=\"1.0\"?><plist><dict><key>x</key></plist>").unwrap_err();
    assert!(matches!(err, PowermetricsError::Xml { index: 0, .. }));
    assert!(std::error::Error::source(&err).is_some());
}

#[test]
fn wrong_type_names_the_key() {
    // The M1 capture with one value's type changed, as a newer macOS might print it.
    let text = std::str::from_utf8(M1_CPU).unwrap().replace(
        "<key>cpu_power</key>\n<real>740.095</real>",
        "<key>cpu_power</key>\n<string>740.095</string>",
    );
    let err = parse_sample(text.as_bytes()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "document 0: `processor.cpu_power` is not a number"
    );
}

#[test]
fn top_level_must_be_a_dictionary() {
    assert!(matches!(
        parse_sample(b"<?xml version=\"1.0\"?><plist version=\"1.0\"><array/></plist>"),
        Err(PowermetricsError::NotDictionary { index: 0 })
    ));
}

#[test]
fn oversized_input_is_refused_before_parsing() {
    let big = vec![b' '; tokbench_telemetry::parse::powermetrics::MAX_STREAM_BYTES + 1];
    assert!(matches!(
        parse_stream(&big),
        Err(PowermetricsError::TooLarge { .. })
    ));
}

#[test]
fn every_cut_of_a_stream_reads_as_complete_samples_plus_a_truncation() {
    let whole = parse_stream(GPU_5).unwrap().samples;
    for cut in (1..GPU_5.len()).step_by(53) {
        let stream =
            parse_stream(&GPU_5[..cut]).unwrap_or_else(|err| panic!("cut at {cut}: {err}"));
        assert_eq!(
            stream.samples[..],
            whole[..stream.samples.len()],
            "cut at {cut}"
        );
        let complete = stream.samples.len() + usize::from(stream.truncated.is_some());
        assert!(complete <= whole.len(), "cut at {cut}");
    }
}
