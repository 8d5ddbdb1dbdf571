//! The verifier against big-number arithmetic, public vectors, the `rsa` crate on random
//! keys and signatures, and Wycheproof-style edge cases.

use super::*;
use ::rsa::pkcs8::DecodePublicKey;
use ::rsa::traits::{PrivateKeyParts, PublicKeyParts};
use ::rsa::{BigUint, Pkcs1v15Sign, RsaPrivateKey, RsaPublicKey as RefKey};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use serde_json::Value;

use crate::b64;

const HASHES: [Hash; 3] = [Hash::Sha256, Hash::Sha384, Hash::Sha512];

fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read_json(rel: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(root().join(rel)).unwrap()).unwrap()
}

fn ours(key: &RefKey) -> RsaPublicKey {
    RsaPublicKey::new(&key.n().to_bytes_be(), &key.e().to_bytes_be()).expect("usable key")
}

/// The `rsa` crate's verdict: the reference.
fn reference(key: &RefKey, hash: Hash, message: &[u8], signature: &[u8]) -> bool {
    match hash {
        Hash::Sha256 => key.verify(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(message), signature),
        Hash::Sha384 => key.verify(Pkcs1v15Sign::new::<Sha384>(), &Sha384::digest(message), signature),
        Hash::Sha512 => key.verify(Pkcs1v15Sign::new::<Sha512>(), &Sha512::digest(message), signature),
    }
    .is_ok()
}

fn sign(key: &RsaPrivateKey, hash: Hash, message: &[u8]) -> Vec<u8> {
    match hash {
        Hash::Sha256 => key.sign(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(message)),
        Hash::Sha384 => key.sign(Pkcs1v15Sign::new::<Sha384>(), &Sha384::digest(message)),
        Hash::Sha512 => key.sign(Pkcs1v15Sign::new::<Sha512>(), &Sha512::digest(message)),
    }
    .unwrap()
}

/// Both verdicts, asserted equal; returns ours.
fn agree(ours: &RsaPublicKey, reference_key: &RefKey, hash: Hash, message: &[u8], signature: &[u8], what: &str) -> bool {
    let got = ours.verify(hash, message, signature);
    let want = reference(reference_key, hash, message, signature);
    assert_eq!(got, want, "{what}: ours {got}, rsa crate {want} ({hash:?}, sig {} bytes)", signature.len());
    got
}

fn big(limbs: &[u32]) -> BigUint {
    BigUint::from_slice(limbs)
}

/// `x` as exactly `k` big-endian bytes.
fn be(x: &BigUint, k: usize) -> Vec<u8> {
    let bytes = x.to_bytes_be();
    assert!(bytes.len() <= k);
    let mut out = vec![0u8; k - bytes.len()];
    out.extend_from_slice(&bytes);
    out
}

fn random_modulus(rng: &mut StdRng, bits: usize) -> Vec<u8> {
    let k = bits.div_ceil(8);
    let mut n = vec![0u8; k];
    rng.fill_bytes(&mut n);
    let top_bits = bits - (k - 1) * 8;
    n[0] = (n[0] & ((1u16 << top_bits) - 1) as u8) | (1 << (top_bits - 1));
    n[k - 1] |= 1;
    n
}

#[test]
fn montgomery_arithmetic_matches_bignum() {
    let mut rng = StdRng::seed_from_u64(1);
    let mut moduli: Vec<Vec<u8>> = [512, 513, 544, 1023, 2048, 2050, 2056, 2080, 3072, 4096, 8192].iter().map(|b| random_modulus(&mut rng, *b)).collect();
    // Extremes of the top limb and of n0: 2^2048 - 1, 2^2047 + 1, all-ones low limb.
    moduli.push(vec![0xff; 256]);
    let mut smallest = vec![0u8; 256];
    smallest[0] = 0x80;
    smallest[255] = 1;
    moduli.push(smallest);
    for n_bytes in moduli {
        let key = RsaPublicKey::new(&n_bytes, &[1, 0, 1]).unwrap();
        let n = BigUint::from_bytes_be(&n_bytes);
        let limbs = key.n.len();
        let r = BigUint::from(1u32) << (32 * limbs);
        assert_eq!(big(&key.r2), (&r * &r) % &n, "R^2 mod n, {} bits", n.bits());
        assert_eq!(key.n0inv.wrapping_mul(key.n[0]), u32::MAX, "-n^-1 mod 2^32");
        for i in 0..20 {
            let mut a = vec![0u8; n_bytes.len()];
            let mut b = vec![0u8; n_bytes.len()];
            rng.fill_bytes(&mut a);
            rng.fill_bytes(&mut b);
            let (mut a, mut b) = (BigUint::from_bytes_be(&a) % &n, BigUint::from_bytes_be(&b) % &n);
            if i == 0 {
                a = &n - 1u32;
                b = &n - 1u32;
            }
            let al = limbs_from_be(&a.to_bytes_be(), limbs).unwrap();
            let bl = limbs_from_be(&b.to_bytes_be(), limbs).unwrap();
            let mut out = vec![0u32; limbs];
            key.mont_mul(&al, &bl, &mut out);
            let got = big(&out);
            assert!(got < n, "fully reduced");
            assert_eq!((got * &r) % &n, (&a * &b) % &n, "a b R^-1");
            let mut wide = vec![0u32; 2 * limbs];
            key.mont_sqr(&al, &mut wide, &mut out);
            let got = big(&out);
            assert!(got < n, "square fully reduced");
            assert_eq!((got * &r) % &n, (&a * &a) % &n, "a^2 R^-1");
            assert_eq!(big(&key.public_op(&al)), a.modpow(&BigUint::from(65537u32), &n), "s^65537");
        }
        let three = RsaPublicKey::new(&n_bytes, &[3]).unwrap();
        let s = BigUint::from_bytes_be(&n_bytes[1..]);
        let sl = limbs_from_be(&s.to_bytes_be(), limbs).unwrap();
        assert_eq!(big(&three.public_op(&sl)), s.modpow(&BigUint::from(3u32), &n), "s^3");
    }
}

#[test]
fn keys_refused() {
    let mut rng = StdRng::seed_from_u64(2);
    let n = random_modulus(&mut rng, 2048);
    assert!(RsaPublicKey::new(&n, &[1, 0, 1]).is_some());
    assert!(RsaPublicKey::new(&[&[0, 0][..], &n].concat(), &[0, 1, 0, 1]).is_some(), "leading zeros are not length");
    let mut even = n.clone();
    even[255] &= 0xfe;
    let cases: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![
        ("even modulus", even, vec![1, 0, 1]),
        ("e = 5", n.clone(), vec![5]),
        ("e = 1", n.clone(), vec![1]),
        ("e = 17", n.clone(), vec![17]),
        ("e = 2^32+1", n.clone(), vec![1, 0, 0, 0, 1]),
        ("empty e", n.clone(), vec![]),
        ("511 bits", random_modulus(&mut rng, 511), vec![1, 0, 1]),
        ("8200 bits", random_modulus(&mut rng, 8200), vec![1, 0, 1]),
        ("zero modulus", vec![0; 256], vec![1, 0, 1]),
        ("empty modulus", vec![], vec![1, 0, 1]),
    ];
    for (name, n, e) in cases {
        assert!(RsaPublicKey::new(&n, &e).is_none(), "{name}");
    }
}

// ---------------------------------------------------------------- vectors --

fn jwk_key(jwk: &Value) -> Option<(Option<String>, RefKey)> {
    if jwk["kty"] != "RSA" {
        return None;
    }
    let n = b64::url_decode(jwk["n"].as_str()?)?;
    let e = b64::url_decode(jwk["e"].as_str()?)?;
    let key = RefKey::new(BigUint::from_bytes_be(&n), BigUint::from_bytes_be(&e)).ok()?;
    Some((jwk["kid"].as_str().map(str::to_string), key))
}

/// One DER TLV: (tag, content, rest).
fn der(input: &[u8]) -> (u8, &[u8], &[u8]) {
    let tag = input[0];
    let (len, head) = match input[1] {
        l if l < 0x80 => (l as usize, 2),
        l => {
            let count = (l & 0x7f) as usize;
            (input[2..2 + count].iter().fold(0usize, |a, b| (a << 8) | *b as usize), 2 + count)
        }
    };
    (tag, &input[head..head + len], &input[head + len..])
}

/// The SubjectPublicKeyInfo of an X.509 certificate (RFC 5280 4.1).
fn spki_of_certificate(cert: &[u8]) -> &[u8] {
    let (_, certificate, _) = der(cert);
    let (_, tbs, _) = der(certificate);
    let mut rest = tbs;
    if rest[0] == 0xa0 {
        rest = der(rest).2; // [0] version
    }
    for _ in 0..5 {
        rest = der(rest).2; // serialNumber, signature, issuer, validity, subject
    }
    let after = der(rest).2;
    &rest[..rest.len() - after.len()]
}

fn pem_body(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("-----")).collect();
    b64::std_decode(&body).unwrap()
}

fn vector_keys(case: &Value) -> Vec<(Option<String>, RefKey)> {
    match case["key_format"].as_str().unwrap() {
        "jwks" => {
            let text = case["jwks_strict"].as_str().or(case["jwks"].as_str()).unwrap();
            let set: Value = serde_json::from_str(text).unwrap();
            set["keys"].as_array().unwrap().iter().filter_map(jwk_key).collect()
        }
        "pem" => vec![(None, RefKey::from_public_key_pem(case["jwks"].as_str().unwrap()).unwrap())],
        "x509_map" => {
            let map: serde_json::Map<String, Value> = serde_json::from_str(case["jwks"].as_str().unwrap()).unwrap();
            map.iter()
                .map(|(kid, pem)| {
                    let cert = pem_body(pem.as_str().unwrap());
                    (Some(kid.clone()), RefKey::from_public_key_der(spki_of_certificate(&cert)).unwrap())
                })
                .collect()
        }
        "none" => Vec::new(),
        other => panic!("key format {other}"),
    }
}

fn hash_of(alg: &str) -> Option<Hash> {
    match alg {
        "RS256" => Some(Hash::Sha256),
        "RS384" => Some(Hash::Sha384),
        "RS512" => Some(Hash::Sha512),
        _ => None,
    }
}

/// Every 17th bit flipped (every byte of a 2048-bit signature gets about one), and the
/// signature cut by one byte: all must fail.
fn fuzz(key: &RsaPublicKey, reference_key: &RefKey, hash: Hash, message: &[u8], signature: &[u8], name: &str) {
    for bit in (0..signature.len() * 8).step_by(17) {
        let mut s = signature.to_vec();
        s[bit / 8] ^= 0x80 >> (bit % 8);
        assert!(!agree(key, reference_key, hash, message, &s, name), "{name}: bit {bit} flipped");
    }
    let cut = &signature[..signature.len() - 1];
    assert!(!agree(key, reference_key, hash, message, cut, name), "{name}: truncated");
}

#[test]
fn jwt_verify_lib_and_rfc7520_vectors() {
    let cases = read_json("tests/vectors/jwt_verify_lib/verify.json");
    let mut checked = 0;
    for case in cases.as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let jwt = case["jwt"].as_str().unwrap();
        let (signing_input, sig64) = jwt.rsplit_once('.').unwrap();
        let header: Value = serde_json::from_slice(&b64::url_decode(jwt.split('.').next().unwrap()).unwrap()).unwrap();
        let Some(hash) = hash_of(header["alg"].as_str().unwrap()) else { continue };
        let keys = vector_keys(case);
        if keys.is_empty() {
            continue; // VerifyAudTest.MissingAudience: no keys at all.
        }
        // One upstream token pads its signature (jwt_verify_lib accepts that; oidc-edge's parser does not).
        let signature = b64::lenient_decode(sig64).unwrap();
        let kid = header["kid"].as_str();
        let mut verified_by = Vec::new();
        for (key_kid, reference_key) in &keys {
            let key = ours(reference_key);
            if agree(&key, reference_key, hash, signing_input.as_bytes(), &signature, name) {
                verified_by.push(key_kid.clone());
            }
            checked += 1;
        }
        match case["expect"].as_str().unwrap() {
            "ok" => {
                assert!(!verified_by.is_empty(), "{name}: no key verifies");
                if let Some(kid) = kid {
                    assert!(verified_by.iter().any(|k| k.as_deref() == Some(kid)), "{name}: not verified by {kid}");
                }
                if !case["fuzz_signature"].is_null() {
                    for (key_kid, reference_key) in &keys {
                        if verified_by.contains(key_kid) {
                            fuzz(&ours(reference_key), reference_key, hash, signing_input.as_bytes(), &signature, name);
                        }
                    }
                }
            }
            "JwtVerificationFail" => {
                let kid = kid.unwrap();
                assert!(!verified_by.iter().any(|k| k.as_deref() == Some(kid)), "{name}: {kid} must not verify");
            }
            _ => {}
        }
    }
    assert!(checked >= 20, "only {checked} (case, key) pairs");

    let rfc = read_json("tests/vectors/rfc7520/4_1.rsa_v15_signature.json");
    let (_, reference_key) = jwk_key(&rfc["input"]["key"]).unwrap();
    let key = ours(&reference_key);
    let input = rfc["signing"]["sig-input"].as_str().unwrap().as_bytes();
    let sig = b64::url_decode(rfc["signing"]["sig"].as_str().unwrap()).unwrap();
    assert!(agree(&key, &reference_key, Hash::Sha256, input, &sig, "RFC 7520 4.1"));
    assert!(!agree(&key, &reference_key, Hash::Sha384, input, &sig, "RFC 7520 4.1 as RS384"));
    fuzz(&key, &reference_key, Hash::Sha256, input, &sig, "RFC 7520 4.1");
}

// ------------------------------------------------------ random keys, rsa crate --

#[test]
fn agrees_with_rsa_crate_on_random_keys_and_signatures() {
    let mut rng = StdRng::seed_from_u64(3);
    // Sizes that are and are not multiples of the limb, and both exponents (larger moduli
    // are covered against plain big-number arithmetic above; key generation is slow).
    let specs: [(usize, u32); 6] = [(2048, 65537), (2048, 65537), (2050, 65537), (2088, 65537), (2048, 3), (2072, 3)];
    let keys: Vec<RsaPrivateKey> = specs.iter().map(|(bits, e)| RsaPrivateKey::new_with_exp(&mut rng, *bits, &BigUint::from(*e)).unwrap()).collect();
    let mut triples = 0usize;
    let mut valid = 0usize;
    for (i, private) in keys.iter().enumerate() {
        let public = private.to_public_key();
        let key = ours(&public);
        let other = keys[(i + 1) % keys.len()].to_public_key();
        let other_key = ours(&other);
        let k = key.len();
        for m in 0..100 {
            let mut message = vec![0u8; rng.gen_range(0..300)];
            rng.fill_bytes(&mut message);
            let hash = HASHES[m % 3];
            let sig = sign(private, hash, &message);
            let mut check = |key: &RsaPublicKey, reference_key: &RefKey, hash: Hash, message: &[u8], sig: &[u8], what: &str| {
                triples += 1;
                agree(key, reference_key, hash, message, sig, what)
            };
            assert!(check(&key, &public, hash, &message, &sig, "valid"));
            valid += 1;
            // A signature flipped at a random bit.
            let mut flipped = sig.clone();
            let bit = rng.gen_range(0..k * 8);
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(!check(&key, &public, hash, &message, &flipped, "signature bit flip"));
            // The message flipped at a random bit (or extended when empty).
            let mut changed = message.clone();
            match changed.len() {
                0 => changed.push(0),
                len => changed[rng.gen_range(0..len)] ^= 1 << rng.gen_range(0..8),
            }
            assert!(!check(&key, &public, hash, &changed, &sig, "message bit flip"));
            // Another hash.
            let other_hash = HASHES[(m + 1 + m / 3 % 2) % 3];
            assert!(!check(&key, &public, other_hash, &message, &sig, "hash swapped"));
            // s + n, when it still fits in k bytes: the same value mod n, out of range.
            let plus_n = BigUint::from_bytes_be(&sig) + public.n();
            if plus_n.bits() <= k * 8 {
                assert!(!check(&key, &public, hash, &message, &be(&plus_n, k), "s + n"));
            }
            // Random bytes of the right length (half of them below n).
            let mut noise = vec![0u8; k];
            rng.fill_bytes(&mut noise);
            if m % 2 == 0 {
                noise[0] = 0;
            }
            assert!(!check(&key, &public, hash, &message, &noise, "random signature"));
            // Another key, when it has the same length.
            if other_key.len() == k {
                assert!(!check(&other_key, &other, hash, &message, &sig, "other key"));
            }
        }
    }
    assert!(triples >= 3000, "{triples} triples");
    eprintln!("{triples} (key, message, signature) triples agreed with the rsa crate");
    assert_eq!(valid, 600);
}

// ----------------------------------------------------- Wycheproof-style cases --

fn fixture_key() -> RsaPrivateKey {
    let set = read_json("tests/fixtures/idp-keys.json");
    let jwk = &set["keys"][0];
    let part = |name: &str| BigUint::from_bytes_be(&b64::url_decode(jwk[name].as_str().unwrap()).unwrap());
    RsaPrivateKey::from_components(part("n"), part("e"), part("d"), vec![part("p"), part("q")]).unwrap()
}

/// The raw RSA signature of an arbitrary block: em^d mod n, k bytes.
fn sign_raw(key: &RsaPrivateKey, em: &[u8]) -> Vec<u8> {
    let m = BigUint::from_bytes_be(em);
    assert!(&m < key.n(), "block must be below n");
    be(&m.modpow(key.d(), key.n()), key.size())
}

/// `00 01 FF.. 00 body`, k bytes, or with the padding and separator given explicitly.
fn block(k: usize, body: &[u8]) -> Vec<u8> {
    let mut em = vec![0x00, 0x01];
    em.extend(std::iter::repeat_n(0xff, k - 3 - body.len()));
    em.push(0x00);
    em.extend_from_slice(body);
    em
}

fn digest_info(prefix: &[u8], digest: &[u8]) -> Vec<u8> {
    [prefix, digest].concat()
}

#[test]
fn wycheproof_style_edge_cases() {
    let private = fixture_key();
    let public = private.to_public_key();
    let key = ours(&public);
    let k = key.len();
    assert_eq!(k, 256);
    let n = public.n().clone();
    let msg = b"oidc-edge edge cases";
    let d256 = Sha256::digest(msg).to_vec();
    let d384 = Sha384::digest(msg).to_vec();
    let d512 = Sha512::digest(msg).to_vec();

    // The well-formed encodings, signed raw, equal the rsa crate's signatures.
    let valid = sign_raw(&private, &block(k, &digest_info(&PREFIX_SHA256, &d256)));
    assert_eq!(valid, sign(&private, Hash::Sha256, msg));
    assert!(agree(&key, &public, Hash::Sha256, msg, &valid, "valid"));

    // Signature values out of range or degenerate.
    let one = be(&BigUint::from(1u32), k);
    let n_minus_1 = be(&(&n - 1u32), k);
    let n_itself = be(&n, k);
    let n_plus_1 = be(&(&n + 1u32), k);
    let plus_n = BigUint::from_bytes_be(&valid) + &n;
    let values: Vec<(&str, Vec<u8>)> = vec![
        ("all zero", vec![0; k]),
        ("one", one),
        ("n - 1", n_minus_1),
        ("n", n_itself),
        ("n + 1", n_plus_1),
        ("all 0xff", vec![0xff; k]),
        ("empty", vec![]),
        ("one zero byte", vec![0]),
        ("valid with a leading zero byte (k + 1)", [&[0][..], &valid].concat()),
        ("valid with a trailing zero byte (k + 1)", [&valid[..], &[0]].concat()),
        ("valid cut by its last byte", valid[..k - 1].to_vec()),
        ("valid cut by its first byte", valid[1..].to_vec()),
        ("valid twice", [&valid[..], &valid].concat()),
    ];
    for (name, sig) in &values {
        assert!(!agree(&key, &public, Hash::Sha256, msg, sig, name), "{name}");
    }
    if plus_n.bits() <= k * 8 {
        assert!(!agree(&key, &public, Hash::Sha256, msg, &be(&plus_n, k), "s + n"));
    }

    // A valid signature whose first byte is zero is still k bytes: accepted as such,
    // refused without its leading zero.
    let (lz_msg, lz_sig) = (0u32..)
        .map(|i| format!("leading zero {i}").into_bytes())
        .map(|m| {
            let s = sign(&private, Hash::Sha256, &m);
            (m, s)
        })
        .find(|(_, s)| s[0] == 0)
        .unwrap();
    assert!(agree(&key, &public, Hash::Sha256, &lz_msg, &lz_sig, "leading zero, k bytes"));
    assert!(!agree(&key, &public, Hash::Sha256, &lz_msg, &lz_sig[1..], "leading zero stripped"));

    // Hash and OID confusion: each encoding verifies under its own hash only.
    for (hash, prefix, digest) in [(Hash::Sha256, PREFIX_SHA256, &d256), (Hash::Sha384, PREFIX_SHA384, &d384), (Hash::Sha512, PREFIX_SHA512, &d512)] {
        let sig = sign_raw(&private, &block(k, &digest_info(&prefix, digest)));
        for h in HASHES {
            assert_eq!(agree(&key, &public, h, msg, &sig, "hash confusion"), h == hash, "{hash:?} block checked as {h:?}");
        }
    }

    // Blocks that are not the encoding of SHA-256(msg), each signed correctly.
    let mut no_null = vec![0x30, 0x2f, 0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x04, 0x20];
    no_null.extend_from_slice(&d256);
    let sha384_oid_sha256_digest = {
        let mut p = PREFIX_SHA384.to_vec();
        p[1] = 0x31;
        p[18] = 0x20;
        digest_info(&p, &d256)
    };
    let sha256_oid_sha384_digest = {
        let mut p = PREFIX_SHA256.to_vec();
        p[1] = 0x41;
        p[18] = 0x30;
        digest_info(&p, &d384)
    };
    let sha1_oid = digest_info(&[0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x00, 0x00, 0x04, 0x20], &d256);
    let good_t = digest_info(&PREFIX_SHA256, &d256);
    let garbage_after = [&good_t[..], b"trailing garbage"].concat();
    let mut long_len = good_t.clone();
    long_len[1] = 0x32; // outer SEQUENCE length off by one
    let mut digest_flipped = good_t.clone();
    digest_flipped[30] ^= 1;
    let blocks: Vec<(&str, Vec<u8>)> = vec![
        ("DigestInfo without NULL parameters", block(k, &no_null)),
        ("SHA-384 OID around a SHA-256 digest", block(k, &sha384_oid_sha256_digest)),
        ("SHA-256 OID around a SHA-384 digest", block(k, &sha256_oid_sha384_digest)),
        ("SHA-1 OID", block(k, &sha1_oid)),
        ("digest without DigestInfo", block(k, &d256)),
        ("trailing garbage after DigestInfo", block(k, &garbage_after)),
        ("DigestInfo length off by one", block(k, &long_len)),
        ("digest bit flipped", block(k, &digest_flipped)),
        ("padding byte 0xfe", {
            let mut em = block(k, &good_t);
            em[40] = 0xfe;
            em
        }),
        ("block type 02", {
            let mut em = block(k, &good_t);
            em[1] = 0x02;
            em
        }),
        ("block type 00", {
            let mut em = block(k, &good_t);
            em[1] = 0x00;
            em
        }),
        ("separator missing (0xff)", {
            let mut em = block(k, &good_t);
            em[k - good_t.len() - 1] = 0xff;
            em
        }),
        ("short padding: 7 bytes of FF, then zeros", {
            let mut em = vec![0x00, 0x01];
            em.extend([0xff; 7]);
            em.resize(k - good_t.len(), 0x00);
            em.extend_from_slice(&good_t);
            em
        }),
        ("short padding: 1 byte of FF, garbage before DigestInfo", {
            let mut em = vec![0x00, 0x01, 0xff, 0x00];
            em.resize(k - good_t.len(), 0x5a);
            em.extend_from_slice(&good_t);
            em
        }),
        ("DigestInfo shifted left one byte, zero at the end", {
            let mut em = block(k, &[&good_t[..], &[0]].concat());
            em.truncate(k);
            em
        }),
    ];
    for (name, em) in &blocks {
        assert_eq!(em.len(), k, "{name}");
        let sig = sign_raw(&private, em);
        assert!(!agree(&key, &public, Hash::Sha256, msg, &sig, name), "{name} accepted");
    }
}

/// Bleichenbacher's 2006 forgery for e = 3: a cube root whose cube starts with a correct
/// `00 01 FF 00 DigestInfo` and ends in garbage. A lax parser accepts it; the exact
/// comparison must not.
#[test]
fn e3_cube_root_forgery_is_refused() {
    let mut rng = StdRng::seed_from_u64(4);
    let private = RsaPrivateKey::new_with_exp(&mut rng, 2048, &BigUint::from(3u32)).unwrap();
    let public = private.to_public_key();
    let key = ours(&public);
    let k = key.len();
    let msg = b"pay mallory";
    let t = digest_info(&PREFIX_SHA256, &Sha256::digest(msg));
    let mut target = vec![0x00, 0x01, 0xff, 0x00];
    target.extend_from_slice(&t);
    target.resize(k, 0x00);
    let target = BigUint::from_bytes_be(&target);
    let root = target.nth_root(3) + 1u32;
    let cube = &root * &root * &root;
    let forged = be(&root, k);
    // The forgery has the shape a lax parser wants...
    assert_eq!(be(&cube, k)[..4 + t.len()], be(&target, k)[..4 + t.len()]);
    // ...and is refused.
    assert!(!agree(&key, &public, Hash::Sha256, msg, &forged, "cube-root forgery"));
    // The honest signature of the same key verifies.
    assert!(agree(&key, &public, Hash::Sha256, msg, &sign(&private, Hash::Sha256, msg), "e = 3 valid"));
}

