//! Resolving a container's user (`runAsUser`, or the image's `User`) against
//! the image's own /etc/passwd and /etc/group.

use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
}

fn read_db(rootfs: &Path, file: &str) -> Vec<Vec<String>> {
    // Never follow a symlinked /etc/passwd out of the rootfs.
    let path = rootfs.join("etc").join(file);
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.file_type().is_file() => {}
        _ => return Vec::new(),
    }
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').map(str::to_string).collect())
        .collect()
}

/// Resolve an image `User` (`uid`, `name`, `uid:gid`, `name:group`) with
/// Kubernetes overrides. Returns an error message naming what is missing.
pub fn resolve(
    rootfs: &Path,
    image_user: Option<&str>,
    run_as_user: Option<u32>,
    run_as_group: Option<u32>,
) -> Result<ResolvedUser, String> {
    let passwd = read_db(rootfs, "passwd");
    let group = read_db(rootfs, "group");
    let spec = image_user.unwrap_or("").trim();
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let (mut uid, mut gid, mut name) = (0u32, 0u32, String::from("root"));
    if !user_part.is_empty() {
        if let Ok(n) = user_part.parse::<u32>() {
            uid = n;
            if let Some(e) = passwd
                .iter()
                .find(|e| e.get(2).and_then(|v| v.parse::<u32>().ok()) == Some(n))
            {
                gid = e.get(3).and_then(|v| v.parse().ok()).unwrap_or(0);
                name = e[0].clone();
            } else {
                name.clear();
            }
        } else {
            let e = passwd.iter().find(|e| e[0] == user_part).ok_or_else(|| {
                format!("image user {user_part:?} not found in the image's /etc/passwd")
            })?;
            uid = e
                .get(2)
                .and_then(|v| v.parse().ok())
                .ok_or("bad /etc/passwd entry")?;
            gid = e.get(3).and_then(|v| v.parse().ok()).unwrap_or(0);
            name = user_part.to_string();
        }
    }
    if let Some(g) = group_part.filter(|g| !g.is_empty()) {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => group
                .iter()
                .find(|e| e[0] == g)
                .and_then(|e| e.get(2).and_then(|v| v.parse().ok()))
                .ok_or_else(|| format!("image group {g:?} not found in the image's /etc/group"))?,
        };
    }
    if let Some(u) = run_as_user {
        if u != uid {
            uid = u;
            name = passwd
                .iter()
                .find(|e| e.get(2).and_then(|v| v.parse::<u32>().ok()) == Some(u))
                .map(|e| e[0].clone())
                .unwrap_or_default();
            if run_as_group.is_none() {
                gid = passwd
                    .iter()
                    .find(|e| e.get(2).and_then(|v| v.parse::<u32>().ok()) == Some(u))
                    .and_then(|e| e.get(3).and_then(|v| v.parse().ok()))
                    .unwrap_or(0);
            }
        }
    }
    if let Some(g) = run_as_group {
        gid = g;
    }
    let additional_gids = if name.is_empty() {
        Vec::new()
    } else {
        group
            .iter()
            .filter(|e| {
                e.get(3)
                    .map(|m| m.split(',').any(|x| x == name))
                    .unwrap_or(false)
            })
            .filter_map(|e| e.get(2).and_then(|v| v.parse().ok()))
            .filter(|g| *g != gid)
            .collect()
    };
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rootfs() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("etc")).unwrap();
        std::fs::write(
            d.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("etc/group"),
            "root:x:0:\napp:x:1000:\nwheel:x:10:app\n",
        )
        .unwrap();
        d
    }

    #[test]
    fn resolves_names_and_overrides() {
        let d = rootfs();
        assert_eq!(
            resolve(d.path(), None, None, None).unwrap(),
            ResolvedUser {
                uid: 0,
                gid: 0,
                additional_gids: vec![]
            }
        );
        assert_eq!(
            resolve(d.path(), Some("app"), None, None).unwrap(),
            ResolvedUser {
                uid: 1000,
                gid: 1000,
                additional_gids: vec![10]
            }
        );
        assert_eq!(
            resolve(d.path(), Some("app:root"), None, None).unwrap().gid,
            0
        );
        assert_eq!(
            resolve(d.path(), Some("app"), Some(1234), None).unwrap(),
            ResolvedUser {
                uid: 1234,
                gid: 0,
                additional_gids: vec![]
            }
        );
        assert_eq!(resolve(d.path(), None, Some(1000), Some(5)).unwrap().gid, 5);
        assert!(resolve(d.path(), Some("nobody"), None, None).is_err());
    }
}
