//! Writer → reader round trips, through memory and through a real file.

use tokbench_gguf::{parse_bytes, GgmlType, GgufError, GgufFile, GgufWriter, Value, ValueType};

fn planned() -> GgufWriter {
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", Value::String("llama".into()))
        .unwrap();
    w.add_metadata("general.name", Value::String("round ✓ trip".into()))
        .unwrap();
    w.add_metadata("x.f64", Value::F64(-1.5e300)).unwrap();
    w.add_metadata("x.bool", Value::Bool(false)).unwrap();
    w.add_metadata("x.empty", Value::Array(ValueType::F32, vec![]))
        .unwrap();
    w.add_metadata(
        "x.nested",
        Value::Array(
            ValueType::Array,
            vec![Value::Array(ValueType::I64, vec![Value::I64(i64::MIN)])],
        ),
    )
    .unwrap();
    w.add_metadata(
        "x.tokens",
        Value::string_array((0..1000).map(|i| format!("t{i}"))),
    )
    .unwrap();
    w.add_tensor("token_embd.weight", &[256, 3], GgmlType::Q4_K)
        .unwrap();
    w.add_tensor("empty", &[0, 4], GgmlType::F32).unwrap();
    w.add_tensor("norm", &[7], GgmlType::F32).unwrap();
    w.add_tensor("scalar", &[], GgmlType::I8).unwrap();
    w.add_tensor("blk.0.attn_q.weight", &[64, 2, 2, 2], GgmlType::Q8_0)
        .unwrap();
    w
}

fn tensor_bytes(name: &str, n: u64) -> Vec<u8> {
    (0..n).map(|i| (i as u8) ^ name.len() as u8).collect()
}

fn write_all(w: GgufWriter) -> Vec<u8> {
    let tensors = w.tensors().to_vec();
    let mut data = w.begin(Vec::new()).unwrap();
    for t in &tensors {
        let bytes = tensor_bytes(&t.name, t.n_bytes());
        // Uneven chunks exercise the streaming path.
        for chunk in bytes.chunks(37) {
            data.write_data(chunk).unwrap();
        }
    }
    data.finish().unwrap()
}

#[test]
fn memory_round_trip_is_exact() {
    let plan = planned();
    let (metadata, tensors, total) = (
        plan.metadata().to_vec(),
        plan.tensors().to_vec(),
        plan.total_len(),
    );
    let data_offset = plan.data_offset();
    let bytes = write_all(plan);
    assert_eq!(bytes.len() as u64, total);

    let f = parse_bytes(&bytes).unwrap();
    assert_eq!(f.version, 3);
    assert_eq!(f.metadata, metadata);
    assert_eq!(f.tensors, tensors);
    assert_eq!(f.data_offset, data_offset);
    assert_eq!(f.alignment, 32);
    for t in &f.tensors {
        assert_eq!(t.offset % 32, 0);
        let r = f.tensor_file_range(t);
        assert_eq!(
            &bytes[r.start as usize..r.end as usize],
            &tensor_bytes(&t.name, t.n_bytes())[..],
            "{}",
            t.name
        );
    }
    assert_eq!(f.tensor("token_embd.weight").unwrap().n_bytes(), 3 * 144);
    assert_eq!(f.tensor("scalar").unwrap().n_elements(), 1);
    assert_eq!(f.tensor("empty").unwrap().n_bytes(), 0);
}

#[test]
fn file_round_trip_and_custom_alignment() {
    let mut w = GgufWriter::new();
    w.add_metadata("general.alignment", Value::U32(64)).unwrap();
    w.add_tensor("a", &[3], GgmlType::F32).unwrap();
    w.add_tensor("b", &[5], GgmlType::F16).unwrap();
    assert_eq!(w.tensors()[1].offset, 64);
    let expected = (w.metadata().to_vec(), w.tensors().to_vec());
    let bytes = write_all(w);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    std::fs::write(&path, &bytes).unwrap();
    let f = GgufFile::open(&path).unwrap();
    assert_eq!((f.metadata, f.tensors), expected);
    assert_eq!(f.alignment, 64);
    assert_eq!(f.data_offset % 64, 0);
    assert_eq!(f.file_size, bytes.len() as u64);
}

#[test]
fn writer_rejects_misuse() {
    let mut w = GgufWriter::new();
    w.add_metadata("k", Value::U8(1)).unwrap();
    assert!(matches!(
        w.add_metadata("k", Value::U8(2)),
        Err(GgufError::Duplicate { .. })
    ));
    assert!(matches!(
        w.add_metadata("m", Value::Array(ValueType::U8, vec![Value::I8(1)])),
        Err(GgufError::MixedArray { index: 0, .. })
    ));
    assert!(matches!(
        w.add_metadata("general.alignment", Value::U32(24)),
        Err(GgufError::BadAlignment { .. })
    ));
    assert!(matches!(
        w.add_tensor("n".repeat(64), &[1], GgmlType::F32),
        Err(GgufError::NameTooLong { len: 64, .. })
    ));
    assert!(matches!(
        w.add_tensor("q", &[100], GgmlType::Q4_0),
        Err(GgufError::InvalidShape { .. })
    ));
    assert!(matches!(
        w.add_tensor("big", &[1, 1, 1, 1, 1], GgmlType::F32),
        Err(GgufError::InvalidShape { .. })
    ));
    w.add_tensor("t", &[4], GgmlType::F32).unwrap();
    assert!(matches!(
        w.add_tensor("t", &[4], GgmlType::F32),
        Err(GgufError::Duplicate { .. })
    ));
    assert!(matches!(
        w.add_metadata("general.alignment", Value::U32(64)),
        Err(GgufError::BadAlignment { .. })
    ));

    // Too many bytes for the current tensor.
    let mut data = w.clone().begin(Vec::new()).unwrap();
    let e = data.write_data(&[0; 17]).unwrap_err();
    assert!(e.to_string().contains("'t'"), "{e}");

    // Too few bytes overall.
    let mut data = w.clone().begin(Vec::new()).unwrap();
    data.write_data(&[0; 8]).unwrap();
    assert_eq!(data.remaining_in_tensor(), 8);
    let e = data.finish().unwrap_err();
    assert!(
        matches!(
            e,
            GgufError::DataSizeMismatch {
                expected: 16,
                got: 8,
                ..
            }
        ),
        "{e}"
    );

    // Bytes after the last tensor.
    let mut data = w.begin(Vec::new()).unwrap();
    data.write_data(&[0; 16]).unwrap();
    assert!(data.current_tensor().is_none());
    assert!(matches!(
        data.write_data(&[0]),
        Err(GgufError::TooMuchData { extra: 1 })
    ));
}

#[test]
fn metadata_only_file() {
    let mut w = GgufWriter::new();
    w.add_metadata("a", Value::String("b".into())).unwrap();
    let bytes = w.begin(Vec::new()).unwrap().finish().unwrap();
    let f = parse_bytes(&bytes).unwrap();
    assert!(f.tensors.is_empty());
    assert_eq!(f.get_str("a"), Some("b"));
}
