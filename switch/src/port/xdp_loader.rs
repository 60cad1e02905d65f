//! A tiny XDP loader: one XSKMAP, one six-instruction program that redirects
//! every frame to the AF_XDP socket the map holds for the frame's receive
//! queue (`ctx->rx_queue_index`: one entry per queue the port opened, so a
//! multi-queue veth has a socket per queue; a queue without a socket, or
//! past the map's end, goes on to the kernel stack), attached through a BPF
//! link.
//!
//! Why a link: the program stays attached only while the link's file
//! descriptor is open. When the process exits for any reason (also `kill -9`)
//! the kernel closes the descriptor and detaches the program; nothing is left
//! on the interface. No bpffs, no libbpf, no ELF: the program is assembled
//! here and loaded with the raw `bpf(2)` system call.
//!
//! Attribute layouts: `union bpf_attr` in include/uapi/linux/bpf.h. Each
//! command gets its own `#[repr(C)]` prefix of that union; the kernel accepts
//! a shorter attribute (the rest reads as zero).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

// bpf(2) commands.
const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;

const BPF_MAP_TYPE_XSKMAP: u32 = 17;
const BPF_PROG_TYPE_XDP: u32 = 6;
/// `enum bpf_attach_type`: BPF_XDP.
const BPF_XDP: u32 = 37;
/// `XDP_FLAGS_SKB_MODE` / `XDP_FLAGS_DRV_MODE` (linux/if_link.h).
const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

/// `ld_imm64` source register meaning "imm is a map file descriptor".
const BPF_PSEUDO_MAP_FD: u8 = 1;
const BPF_FUNC_REDIRECT_MAP: i32 = 51;
const XDP_PASS: i32 = 2;

/// Which XDP hook the program is attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// In the driver (veth has it): "native".
    Driver,
    /// In the generic receive path, for any device: "generic" (skb mode).
    Generic,
}

impl Hook {
    pub fn name(self) -> &'static str {
        match self {
            Hook::Driver => "native",
            Hook::Generic => "generic",
        }
    }

    fn flags(self) -> u32 {
        match self {
            Hook::Driver => XDP_FLAGS_DRV_MODE,
            Hook::Generic => XDP_FLAGS_SKB_MODE,
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy)]
struct BpfInsn {
    code: u8,
    /// dst_reg in the low nibble, src_reg in the high nibble (little-endian
    /// bitfield order of `struct bpf_insn`).
    regs: u8,
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> BpfInsn {
    BpfInsn {
        code,
        regs: (src << 4) | (dst & 0x0f),
        off,
        imm,
    }
}

/// The program, with the map's descriptor patched in:
/// ```text
/// r2 = *(u32 *)(r1 + 16)          ; ctx->rx_queue_index
/// r1 = map_fd ll                  ; the XSKMAP (one entry per queue)
/// r3 = XDP_PASS                   ; action when the queue has no socket
/// call bpf_redirect_map
/// exit
/// ```
fn program(map_fd: RawFd) -> [BpfInsn; 6] {
    [
        // BPF_LDX | BPF_MEM | BPF_W
        insn(0x61, 2, 1, 16, 0),
        // BPF_LD | BPF_IMM | BPF_DW, then the upper half
        insn(0x18, 1, BPF_PSEUDO_MAP_FD, 0, map_fd),
        insn(0, 0, 0, 0, 0),
        // BPF_ALU64 | BPF_MOV | BPF_K
        insn(0xb7, 3, 0, 0, XDP_PASS),
        // BPF_JMP | BPF_CALL
        insn(0x85, 0, 0, 0, BPF_FUNC_REDIRECT_MAP),
        // BPF_JMP | BPF_EXIT
        insn(0x95, 0, 0, 0, 0),
    ]
}

#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
}

#[repr(C)]
#[derive(Default)]
struct MapElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
}

/// bpf(2) for a command whose result is a new file descriptor.
///
/// # Safety
/// `attr` must be the attribute layout of `cmd`, and every pointer stored in
/// it must be valid for the kernel to read (or write, for a log buffer) for
/// the duration of the call.
unsafe fn bpf_fd<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<OwnedFd> {
    // SAFETY: the caller guarantees the layout and the pointers in `attr`;
    // the size passed is the size of that struct.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = RawFd::try_from(r).map_err(|_| io::Error::other("bpf(2) returned a bad fd"))?;
    // SAFETY: on success these commands return a new descriptor that nobody
    // else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn name16(s: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (o, b) in out.iter_mut().zip(s.bytes().take(15)) {
        *o = b;
    }
    out
}

/// The loaded XSKMAP and program (not yet attached anywhere).
pub struct XskProgram {
    map: OwnedFd,
    prog: OwnedFd,
}

/// Why loading failed, with the verifier's log when there is one.
#[derive(Debug)]
pub struct LoadError {
    pub step: &'static str,
    pub source: io::Error,
    pub verifier_log: String,
}

impl XskProgram {
    /// Creates an XSKMAP with `queues` entries and loads the redirect
    /// program that uses it.
    pub fn load(queues: u32) -> Result<XskProgram, LoadError> {
        let mut attr = MapCreateAttr {
            map_type: BPF_MAP_TYPE_XSKMAP,
            key_size: 4,
            value_size: 4,
            max_entries: queues.max(1),
            map_name: name16("shunt_xsks"),
            ..Default::default()
        };
        // SAFETY: MapCreateAttr is the BPF_MAP_CREATE prefix of bpf_attr and
        // holds no pointers.
        let map = unsafe { bpf_fd(BPF_MAP_CREATE, &mut attr) }.map_err(|source| LoadError {
            step: "create XSKMAP",
            source,
            verifier_log: String::new(),
        })?;

        let insns = program(map.as_raw_fd());
        let license = c"Dual MIT/GPL";
        let mut log = vec![0u8; 0];
        let attempt = |log: &mut Vec<u8>| {
            let mut attr = ProgLoadAttr {
                prog_type: BPF_PROG_TYPE_XDP,
                insn_cnt: insns.len() as u32,
                insns: insns.as_ptr() as u64,
                license: license.as_ptr() as u64,
                log_level: if log.is_empty() { 0 } else { 1 },
                log_size: log.len() as u32,
                log_buf: if log.is_empty() {
                    0
                } else {
                    log.as_mut_ptr() as u64
                },
                prog_name: name16("shunt_xsk"),
                expected_attach_type: BPF_XDP,
                ..Default::default()
            };
            // SAFETY: ProgLoadAttr is the BPF_PROG_LOAD prefix of bpf_attr;
            // `insns`, `license` and `log` outlive the call, and log_size is
            // the length of `log`.
            unsafe { bpf_fd(BPF_PROG_LOAD, &mut attr) }
        };
        let prog = match attempt(&mut log) {
            Ok(fd) => fd,
            Err(_) => {
                // Again, with the verifier's log, to say why.
                log = vec![0u8; 64 * 1024];
                match attempt(&mut log) {
                    Ok(fd) => fd,
                    Err(source) => {
                        let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                        return Err(LoadError {
                            step: "load the XDP redirect program",
                            source,
                            verifier_log: String::from_utf8_lossy(&log[..end]).into_owned(),
                        });
                    }
                }
            }
        };
        Ok(XskProgram { map, prog })
    }

    /// Puts the AF_XDP socket `xsk` into the map for `queue`.
    pub fn set_socket(&self, queue: u32, xsk: BorrowedFd<'_>) -> io::Result<()> {
        let key: u32 = queue;
        let value: u32 = xsk.as_raw_fd() as u32;
        let mut attr = MapElemAttr {
            map_fd: self.map.as_raw_fd() as u32,
            key: &key as *const u32 as u64,
            value: &value as *const u32 as u64,
            flags: 0, // BPF_ANY
            ..Default::default()
        };
        // SAFETY: MapElemAttr is the BPF_MAP_*_ELEM prefix of bpf_attr; key
        // and value point at live u32s (the map's key and value size).
        let r = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_UPDATE_ELEM,
                &mut attr as *mut MapElemAttr as *mut libc::c_void,
                std::mem::size_of::<MapElemAttr>() as libc::c_uint,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Attaches the program to `ifindex` at `hook` through a BPF link. The
    /// program is detached when the returned link is dropped, or when the
    /// process dies. EBUSY: the interface already has an XDP program (ours
    /// from a process that is still going away, or someone else's).
    pub fn attach(&self, ifindex: u32, hook: Hook) -> io::Result<XdpLink> {
        let mut attr = LinkCreateAttr {
            prog_fd: self.prog.as_raw_fd() as u32,
            target_ifindex: ifindex,
            attach_type: BPF_XDP,
            flags: hook.flags(),
        };
        // SAFETY: LinkCreateAttr is the BPF_LINK_CREATE prefix of bpf_attr
        // and holds no pointers.
        let fd = unsafe { bpf_fd(BPF_LINK_CREATE, &mut attr) }?;
        Ok(XdpLink { fd, hook })
    }
}

/// An attached XDP program. Dropping it detaches the program.
pub struct XdpLink {
    fd: OwnedFd,
    hook: Hook,
}

impl XdpLink {
    pub fn hook(&self) -> Hook {
        self.hook
    }
}

impl AsFd for XdpLink {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
