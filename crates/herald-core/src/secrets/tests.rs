use serde_json::json;

use super::*;

fn key() -> MasterKey {
    MasterKey::parse(&generate_key()).unwrap()
}

#[test]
fn keys_parse_in_every_base64_spelling() {
    let bytes = [7u8; 32];
    let spellings = [
        STANDARD.encode(bytes),
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes),
        base64::engine::general_purpose::URL_SAFE.encode(bytes),
        to_b64url(&bytes),
        format!("  {}\n", STANDARD.encode(bytes)),
    ];
    let ids: Vec<String> = spellings.iter().map(|s| MasterKey::parse(s).unwrap().id().to_string()).collect();
    assert!(ids.iter().all(|id| id == &ids[0] && id.len() == 8), "{ids:?}");
    assert!(MasterKey::parse(&STANDARD.encode([7u8; 16])).unwrap_err().contains("32 bytes"));
    assert!(MasterKey::parse("not base64!").is_err());
    assert_ne!(generate_key(), generate_key());
}

#[test]
fn debug_shows_the_key_id_only() {
    let text = STANDARD.encode([9u8; 32]);
    let k = MasterKey::parse(&text).unwrap();
    let shown = format!("{:?}", Keyring::new(k, None));
    assert!(shown.contains(&MasterKey::parse(&text).unwrap().id) && !shown.contains(&text), "{shown}");
}

#[test]
fn sealed_values_open_only_in_their_place() {
    let ring = Keyring::new(key(), None);
    let sealed = ring.seal("webhooks/wh_1/secret", "whsec_abc");
    assert!(sealed.starts_with(&format!("enc:v1:{}:", ring.current_id())), "{sealed}");
    assert!(!sealed.contains("whsec_abc"));
    assert_ne!(sealed, ring.seal("webhooks/wh_1/secret", "whsec_abc"), "a fresh nonce every time");
    assert_eq!(ring.open("webhooks/wh_1/secret", &sealed).unwrap(), "whsec_abc");
    assert!(matches!(ring.open("webhooks/wh_2/secret", &sealed), Err(SecretError::Tampered { .. })));
    let mut flipped = sealed.clone().into_bytes();
    let last = flipped.len() - 2;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    assert!(matches!(ring.open("webhooks/wh_1/secret", &flipped), Err(SecretError::Tampered { .. })));
    assert!(matches!(ring.open("x", "enc:v1:nokeyid"), Err(SecretError::Malformed { .. })));
    assert_eq!(ring.open("x", "plain old value").unwrap(), "plain old value");
}

#[test]
fn the_previous_key_opens_until_rotation() {
    let (a, b) = (generate_key(), generate_key());
    let old = Keyring::new(MasterKey::parse(&a).unwrap(), None);
    let sealed = old.seal("ctx", "secret");
    let new_only = Keyring::new(MasterKey::parse(&b).unwrap(), None);
    let err = new_only.open("ctx", &sealed).unwrap_err().to_string();
    assert!(err.contains(old.current_id()) && err.contains("secret_key_previous"), "{err}");
    let both = Keyring::new(MasterKey::parse(&b).unwrap(), Some(MasterKey::parse(&a).unwrap()));
    assert_eq!(both.open("ctx", &sealed).unwrap(), "secret");
    assert_eq!(both.reseal("ctx", &sealed, Reseal::Plaintext).unwrap(), None, "start-up leaves it");
    let rotated = both.reseal("ctx", &sealed, Reseal::Rotate).unwrap().expect("rotation moves it");
    assert_eq!(new_only.open("ctx", &rotated).unwrap(), "secret");
    assert_eq!(both.reseal("ctx", &rotated, Reseal::Rotate).unwrap(), None, "idempotent");
    let sealed_plain = both.reseal("ctx", "secret", Reseal::Plaintext).unwrap().expect("plaintext is sealed");
    assert_eq!(new_only.open("ctx", &sealed_plain).unwrap(), "secret");
}

#[test]
fn channel_configs_seal_exactly_their_secret_fields() {
    let ring = Keyring::new(key(), None);
    let config = json!({
        "subject": "mailto:ops@example.com",
        "vapid_public_key": "BPub",
        "vapid_private_key": "MIGHAgEA",
        "private_key": "-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n",
        "callback_url": "https://cb.example.com/hook",
        "callback_auth": "dXNlcjpwYXNz",
        "service_account": {"project_id": "p", "client_email": "e@p", "private_key": "-----BEGIN RSA-----"},
        "endpoint": null,
    });
    let sealed = ring.seal_channel_config("ch_1", &config);
    for path in ["/vapid_private_key", "/private_key", "/callback_auth", "/service_account/private_key"] {
        assert!(sealed.pointer(path).unwrap().as_str().unwrap().starts_with(SEALED_PREFIX), "{path}");
    }
    for path in ["/subject", "/vapid_public_key", "/callback_url", "/service_account/project_id", "/endpoint"] {
        assert_eq!(sealed.pointer(path), config.pointer(path), "{path}");
    }
    assert_eq!(ring.open_channel_config("ch_1", sealed.clone()).unwrap(), config);
    assert!(ring.open_channel_config("ch_2", sealed.clone()).is_err(), "bound to its channel");
    assert_eq!(ring.reseal_channel_config("ch_1", &sealed, Reseal::Rotate).unwrap(), None);
    let resealed = ring.reseal_channel_config("ch_1", &config, Reseal::Plaintext).unwrap().unwrap();
    assert_eq!(ring.open_channel_config("ch_1", resealed).unwrap(), config);
    let no_secrets = json!({"subject": "mailto:x@y", "service_account": "not an object"});
    assert_eq!(ring.seal_channel_config("ch_1", &no_secrets), no_secrets);
}
