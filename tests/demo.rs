//! The README's run command: the scripted scenario plays on the local stack and every expected
//! step happens (the timeline's FAIL lines are what this catches).

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_scenario_passes() {
    assert!(
        eddo_local::demo::run().await.expect("the demo runs"),
        "the demo reported failed steps; its timeline is in this test's output"
    );
}
