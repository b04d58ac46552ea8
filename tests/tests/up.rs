//! `ecovol up`, the README's first command: a node with synthetic data from nothing, reusable on a second run.

#[tokio::test]
async fn up_loads_demo_data_once_and_reuses_its_folder() {
    let dir = tempfile::tempdir().unwrap();
    let listen = ecovol_tests::process::free_address().unwrap().to_string();
    let options = ecovol_node::demo::UpOptions {
        dir: dir.path().join("demo"),
        listen,
        volunteers: 40,
        exit_after_load: true,
        seed: 7,
    };
    let mut first = Vec::new();
    ecovol_node::demo::up(options.clone(), &mut first).await.unwrap();
    let first = String::from_utf8(first).unwrap();
    assert!(first.contains("loaded synthetic demo data"), "{first}");
    assert!(first.contains("volunteers 40  teams 6  sites 5"), "{first}");
    let tokens = std::fs::read_to_string(dir.path().join("demo/tokens.txt")).unwrap();
    assert_eq!(tokens.lines().count(), 3);
    assert!(tokens.lines().all(|line| line.contains(" ecv_")), "{tokens}");
    // Run again: the same folder, the same data, nothing loaded twice.
    let mut second = Vec::new();
    ecovol_node::demo::up(options, &mut second).await.unwrap();
    let second = String::from_utf8(second).unwrap();
    assert!(!second.contains("loaded synthetic demo data"), "{second}");
    assert!(second.contains("volunteers 40  teams 6  sites 5"), "{second}");
    // The demo's identity numbers stay encrypted at rest.
    assert!(ecovol_tests::bytes_occur_under(&dir.path().join("demo/data"), b"\"identity_number\"").is_none());
}

#[test]
fn up_refuses_a_folder_that_is_not_its_own() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("thesis.docx"), b"precious").unwrap();
    assert!(ecovol_node::demo::check_folder(dir.path()).is_err());
    assert!(ecovol_node::demo::check_folder(&dir.path().join("new")).is_ok());
}
