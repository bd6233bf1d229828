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

#[tokio::test]
async fn the_code_key_and_its_previous_version_are_read_from_ssm() {
    let aws = local_aws().await;
    let ssm = aws_sdk_ssm::Client::new(&aws);
    let name = format!("/contact-migration/test/{}", uuid::Uuid::new_v4().simple());
    let versions = [
        "the-first-key-of-at-least-thirty-two-bytes",
        "the-second-key-of-at-least-thirty-two-bytes",
        "the-third-key-of-at-least-thirty-two-bytes!",
    ];
    let code = OneTimeCode::generate(&mut rand::rng());
    let mut digests = Vec::new();
    for (i, secret) in versions.iter().enumerate() {
        ssm.put_parameter()
            .name(&name)
            .value(*secret)
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .overwrite(i > 0)
            .send()
            .await
            .expect("the SSM emulator is reachable (make test starts it)");
        digests.push(CodeKey::new(secret.as_bytes().to_vec()).unwrap().digest(
            "m",
            CodeSide::NewContact,
            &code,
        ));
    }

    let key = resolve_code_key(&aws, &CodeKeySource::Ssm(name))
        .await
        .expect("key read");
    let checks = |digest: &String| key.matches("m", CodeSide::NewContact, code.as_str(), digest);
    assert!(checks(&digests[2]), "the latest version is the key");
    assert!(
        checks(&digests[1]),
        "the version before it still checks codes"
    );
    assert!(!checks(&digests[0]), "older versions do not");
    assert!(!key.holds_key_of(&digests[0]));
    // New codes are made with the latest version.
    assert_eq!(key.digest("m", CodeSide::NewContact, &code), digests[2]);
}
