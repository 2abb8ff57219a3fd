//! PullImage: through peapod's puller (registry mirrors, credentials from
//! `registries.toml`), with the request's auth for the image's registry.

use crate::{image_status, pb, Cri};
use peapod_image::Credential;
use tonic::Status;

pub async fn pull_image(
    cri: &Cri,
    req: pb::PullImageRequest,
) -> Result<pb::PullImageResponse, Status> {
    let name = crate::required_image(req.image)?;
    let reference = peapod_image::Reference::parse(&name).map_err(image_status)?;
    let mut creds = Vec::new();
    if let Some(a) = req.auth {
        let (mut username, mut password) = (a.username, a.password);
        if username.is_empty() && !a.auth.is_empty() {
            use base64::Engine;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(a.auth.trim())
                .map_err(|e| Status::invalid_argument(format!("auth.auth: not base64: {e}")))?;
            let text = String::from_utf8_lossy(&decoded).to_string();
            let (u, p) = text.split_once(':').ok_or_else(|| {
                Status::invalid_argument("auth.auth: not base64 of `user:password`")
            })?;
            username = u.to_string();
            password = p.to_string();
        }
        if !a.identity_token.is_empty() || !a.registry_token.is_empty() {
            return Err(Status::invalid_argument(
                "auth.identity_token / auth.registry_token: token auth is not supported yet; pass username and password",
            ));
        }
        if !username.is_empty() {
            let registry = if a.server_address.is_empty() {
                reference.registry.clone()
            } else {
                a.server_address
                    .trim_start_matches("https://")
                    .trim_start_matches("http://")
                    .trim_end_matches('/')
                    .to_string()
            };
            creds.push(Credential {
                registry,
                username,
                password,
            });
        }
    }
    let rec = cri
        .puller
        .pull(&name, &creds, None)
        .await
        .map_err(image_status)?;
    Ok(pb::PullImageResponse {
        image_ref: rec.config_digest,
    })
}
