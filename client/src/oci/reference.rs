//! Image references: `registry/repository[:tag][@digest]`, with Docker Hub's defaults
//! (`ubuntu` is `index.docker.io/library/ubuntu:latest`).

use std::fmt;

use sigil_proto::oci::{Digest, parse_reference};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    #[error(
        "{input:?} is not an image reference ({reason}); expected registry/repository[:tag][@sha256:<hex>]"
    )]
    Invalid { input: String, reason: String },
}

/// A parsed image reference. The registry is the host actually contacted.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
    /// The tag is the `latest` a reference without tag or digest stands for.
    implied_tag: bool,
}

impl ImageRef {
    pub fn parse(input: &str) -> Result<ImageRef, ReferenceError> {
        // The grammar is checked by hand rather than with oci-spec's regular expression,
        // whose compilation cost ~50 ms of every command's start-up.
        let parsed = parse_reference(input).map_err(|e| ReferenceError::Invalid {
            input: input.chars().take(300).collect(),
            reason: e.to_string(),
        })?;
        let implied_tag = parsed.tag.is_none() && parsed.digest.is_none();
        Ok(ImageRef {
            registry: parsed.registry,
            repository: parsed.repository,
            tag: if implied_tag {
                Some("latest".to_string())
            } else {
                parsed.tag
            },
            digest: parsed.digest,
            implied_tag,
        })
    }

    pub fn registry(&self) -> &str {
        &self.registry
    }

    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The tag as written, not the implied `latest`.
    pub fn explicit_tag(&self) -> Option<&str> {
        self.tag.as_deref().filter(|_| !self.implied_tag)
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `registry/repository`: what cosign records as the docker reference and uses as the
    /// attestation subject name.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same repository at `digest` (no tag).
    pub fn at_digest(&self, digest: &Digest) -> ImageRef {
        ImageRef {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: None,
            digest: Some(digest.clone()),
            implied_tag: false,
        }
    }

    /// The same repository at `tag` (no digest).
    pub fn at_tag(&self, tag: &str) -> ImageRef {
        ImageRef {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: Some(tag.to_string()),
            digest: None,
            implied_tag: false,
        }
    }

    /// The tag or digest the registry is asked for (a digest wins over a tag).
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }

    pub(crate) fn to_oci(&self) -> oci_client::Reference {
        match (&self.digest, &self.tag) {
            (Some(d), _) => oci_client::Reference::with_digest(
                self.registry.clone(),
                self.repository.clone(),
                d.to_string(),
            ),
            (None, t) => oci_client::Reference::with_tag(
                self.registry.clone(),
                self.repository.clone(),
                t.clone().unwrap_or_else(|| "latest".into()),
            ),
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

    #[test]
    fn parses_hub_defaults_ports_tags_and_digests() {
        let r = ImageRef::parse("ubuntu").unwrap();
        assert_eq!(r.registry(), "index.docker.io");
        assert_eq!(r.repository(), "library/ubuntu");
        assert_eq!(r.tag(), Some("latest"));
        assert_eq!(r.name(), "index.docker.io/library/ubuntu");
        assert_eq!(r.explicit_tag(), None);
        assert_eq!(
            ImageRef::parse("ubuntu:latest").unwrap().explicit_tag(),
            Some("latest")
        );

        let r = ImageRef::parse("127.0.0.1:5000/team/app:v1").unwrap();
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "team/app");
        assert_eq!(r.manifest_reference(), "v1");
        assert_eq!(r.to_string(), "127.0.0.1:5000/team/app:v1");

        let r = ImageRef::parse(&format!("localhost:5000/app@{D}")).unwrap();
        assert_eq!(r.tag(), None, "a digest reference has no implied tag");
        assert_eq!(r.digest().unwrap().to_string(), D);
        assert_eq!(r.manifest_reference(), D);
        assert_eq!(r.to_string(), format!("localhost:5000/app@{D}"));

        let both = ImageRef::parse(&format!("r.example/app:v2@{D}")).unwrap();
        assert_eq!(both.tag(), Some("v2"));
        assert_eq!(both.manifest_reference(), D);
        let moved = both.at_tag("sha256-x");
        assert_eq!(moved.to_string(), "r.example/app:sha256-x");
    }

    #[test]
    fn rejects_what_is_not_a_reference() {
        for bad in [
            "",
            "registry.example/UPPER",
            "r.example/app@sha256:abc",
            "r.example/app@md5:d41d8cd98f00b204e9800998ecf8427e",
            "r.example/app:tag with space",
            "https://r.example/app",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad:?}");
        }
    }
}
