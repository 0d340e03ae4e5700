//! Which container the agent itself runs in, if any, so that it never stops or restarts it:
//! that would cut the only way back in to the server.

/// The 64-hex id of the container this process runs in, read from `/proc/self/mountinfo`, where
/// Docker's bind mounts of `/etc/hostname`, `/etc/hosts` and `/etc/resolv.conf` name it.
/// `None` outside a container or when it cannot be told.
pub fn detect() -> Option<String> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    from_mountinfo(&mountinfo)
}

/// The container id named in a mountinfo text.
pub fn from_mountinfo(mountinfo: &str) -> Option<String> {
    mountinfo.lines().find_map(|line| {
        let rest = &line[line.find("/containers/")? + "/containers/".len()..];
        let id = rest.split('/').next()?;
        (id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_id_in_dockers_bind_mounts() {
        let id = "3f4a".repeat(16);
        let text = format!(
            "612 590 0:54 / / rw,relatime master:312 - overlay overlay rw\n\
             631 612 254:1 /var/lib/docker/containers/{id}/hostname /etc/hostname rw,relatime - ext4 /dev/vda rw\n"
        );
        assert_eq!(from_mountinfo(&text).as_deref(), Some(id.as_str()));
        assert_eq!(
            from_mountinfo("24 1 0:22 / /proc rw - proc proc rw\n"),
            None
        );
        assert_eq!(
            from_mountinfo("1 1 0:1 /x/containers/short/hostname /etc/hostname - ext4 x rw\n"),
            None
        );
    }
}
