//! SSH key records: an empty volume per key whose labels hold its name and public key,
//! and the check that a public key is one OpenSSH line.

use std::collections::BTreeMap;

use vps_client::{SshKeyInfo, VpsClientError};
use vps_primitives::{PublicKeyLine, SshKeyId};

use super::LocalVpsClient;
use super::errors::{engine_error, invalid, not_found};
use super::random_hex;
use crate::labels::{KEY_NAME_LABEL, KEY_PUBLIC_LABEL, Kind, SSH_KEY_LABEL};

/// Checks an OpenSSH public key line with the toolkit's one check ([`PublicKeyLine`]);
/// returns it normalised.
pub(super) fn validate_public_key(key: &str) -> Result<String, VpsClientError> {
    PublicKeyLine::parse(key)
        .map(String::from)
        .map_err(|e| invalid(e.to_string()))
}

impl LocalVpsClient {
    pub(super) async fn record_key(
        &self,
        name: &str,
        public_key: &str,
    ) -> Result<SshKeyId, VpsClientError> {
        if name.trim().is_empty() || name.contains(['\n', '\r', '\0']) {
            return Err(invalid("an SSH key needs a non-empty, one-line name"));
        }
        let public_key = validate_public_key(public_key)?;
        let id = SshKeyId::parse(&format!("lvps-key-{}", random_hex())).map_err(|e| {
            VpsClientError::Backend {
                message: format!("local-vps: generated an invalid key id: {e}"),
                source: None,
            }
        })?;
        let mut labels = self.owned(Kind::SshKey);
        labels.extend([
            (SSH_KEY_LABEL.to_owned(), id.to_string()),
            (KEY_NAME_LABEL.to_owned(), name.to_owned()),
            (KEY_PUBLIC_LABEL.to_owned(), public_key),
        ]);
        self.docker
            .volume_create(id.as_str(), &labels)
            .await
            .map_err(|e| engine_error("recording the SSH key", e))?;
        Ok(id)
    }

    pub(super) async fn remove_key(&self, id: &SshKeyId) -> Result<(), VpsClientError> {
        let mut filters = self.owned(Kind::SshKey);
        filters.push((SSH_KEY_LABEL.to_owned(), id.to_string()));
        for v in self.volumes(&filters).await? {
            self.docker
                .volume_rm(&v.name)
                .await
                .map_err(|e| engine_error(format_args!("removing SSH key {id}"), e))?;
        }
        Ok(())
    }

    pub(super) async fn keys(&self) -> Result<Vec<SshKeyInfo>, VpsClientError> {
        Ok(self
            .volumes(&self.owned(Kind::SshKey))
            .await?
            .into_iter()
            .filter_map(|v| {
                let labels: BTreeMap<String, String> = v.labels;
                Some(SshKeyInfo {
                    id: SshKeyId::parse(labels.get(SSH_KEY_LABEL)?).ok()?,
                    name: labels.get(KEY_NAME_LABEL).cloned().unwrap_or_default(),
                    public_key: labels.get(KEY_PUBLIC_LABEL).cloned().unwrap_or_default(),
                })
            })
            .collect())
    }

    /// The public keys of `ids`, in order; an unknown id is [`VpsClientError::NotFound`].
    pub(super) async fn public_keys(
        &self,
        ids: &[SshKeyId],
    ) -> Result<Vec<String>, VpsClientError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys = self.keys().await?;
        ids.iter()
            .map(|id| {
                keys.iter()
                    .find(|k| &k.id == id)
                    .map(|k| k.public_key.clone())
                    .ok_or_else(|| not_found("SSH key", id))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_keys_are_checked() {
        let good =
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFpkHqZI0ux0XvjMJfc54ZKH5oWo6gHON4gVhG9XSP34 me@x";
        assert_eq!(
            validate_public_key(&format!("  {good}\n")).ok().as_deref(),
            Some(good)
        );
        for bad in [
            "",
            "ssh-ed25519",
            "hello world",
            "ssh-rsa AAA$$",
            "ssh-rsa AAAA\nssh-rsa BBBB",
        ] {
            assert!(validate_public_key(bad).is_err(), "{bad:?}");
        }
    }
}
