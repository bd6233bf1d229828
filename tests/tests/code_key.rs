//! The code key in production comes from an SSM SecureString, read once at
//! init; here from the local SSM emulator.

use contact_migration::config::CodeKeySource;
use contact_migration::domain::{CodeKey, CodeSide, OneTimeCode};
use contact_migration::lambda::resolve_code_key;
use end_to_end::local_config;

fn ssm_endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL_SSM").unwrap_or_else(|_| "http://127.0.0.1:8006".into())
}

async fn local_aws() -> aws_config::SdkConfig {
    // resolve_code_key builds its client from the shared config, as in Lambda.
    local_config()
        .await
        .into_builder()
        .endpoint_url(ssm_endpoint())
        .build()
}

#[tokio::test]
async fn the_code_key_is_read_from_an_ssm_secure_string() {
    let aws = local_aws().await;
    let name = format!("/contact-migration/test/{}", uuid::Uuid::new_v4().simple());
    let secret = "a-secure-string-key-of-at-least-thirty-two-bytes";
    aws_sdk_ssm::Client::new(&aws)
        .put_parameter()
        .name(&name)
        .value(secret)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .expect("the SSM emulator is reachable (make test starts it)");

    let key = resolve_code_key(&aws, &CodeKeySource::Ssm(name))
        .await
        .expect("key read");
    let expected = CodeKey::new(secret.as_bytes().to_vec()).unwrap();
    let code = OneTimeCode::generate(&mut rand::rng());
    let digest = expected.digest("m", CodeSide::NewContact, &code);
    assert!(
        key.matches("m", CodeSide::NewContact, code.as_str(), &digest),
        "the same key"
    );
}

#[tokio::test]
async fn a_missing_or_short_code_key_parameter_fails_init() {
    let aws = local_aws().await;
    let missing = resolve_code_key(
        &aws,
        &CodeKeySource::Ssm("/contact-migration/absent".into()),
    )
    .await;
    assert!(missing.is_err());

    let name = format!("/contact-migration/test/{}", uuid::Uuid::new_v4().simple());
    aws_sdk_ssm::Client::new(&aws)
        .put_parameter()
        .name(&name)
        .value("too-short")
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    let short = resolve_code_key(&aws, &CodeKeySource::Ssm(name)).await;
    let message = short.expect_err("a short key is refused").to_string();
    assert!(message.contains("32 bytes"), "{message}");
    assert!(!message.contains("too-short"), "the value is never echoed");
}
