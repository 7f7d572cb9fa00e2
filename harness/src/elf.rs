//! Reading 64-bit little-endian ELF files: their program headers, and the PVH entry of a
//! kernel.
//!
//! QEMU boots an ELF `vmlinux` given to `-kernel` through its PVH entry, which the kernel
//! announces (with `CONFIG_PVH`) in an ELF note named `Xen` of type 18
//! (`XEN_ELFNOTE_PHYS32_ENTRY`) whose descriptor is the 32-bit physical entry address.
//! Notes are found through the program headers (`PT_NOTE` segments), which is what QEMU
//! reads too. The harness's own executable is read for its read-only `PT_LOAD` segments
//! (`huge_code.rs`).

use std::ops::Range;

/// Errors of reading an ELF file.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ElfError {
    /// Not a little-endian 64-bit ELF (for a kernel: not x86-64).
    #[error("not a little-endian x86-64 ELF file")]
    NotElf,
    /// A header or note points outside the file.
    #[error("ELF file is truncated or malformed ({0})")]
    Malformed(&'static str),
    /// No `Xen` note of type 18.
    #[error("ELF file has no PVH entry note (kernel built without CONFIG_PVH?)")]
    NoPvhNote,
}

/// `PT_LOAD`.
const PT_LOAD: u32 = 1;
/// `PT_NOTE`.
const PT_NOTE: u32 = 4;
/// `PF_W`: a segment's pages are writable.
const PF_W: u32 = 2;
/// `XEN_ELFNOTE_PHYS32_ENTRY`.
const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
/// `EM_X86_64`.
const EM_X86_64: u16 = 62;

/// One program header: what the loader maps (or reads) from where in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProgramHeader {
    /// `p_type`.
    kind: u32,
    /// `p_flags`.
    flags: u32,
    /// `p_offset`: where the segment starts in the file.
    offset: u64,
    /// `p_filesz`: its size in the file.
    file_size: u64,
}

/// The program headers of a little-endian 64-bit ELF file whose first bytes are `elf`
/// (they must include the headers).
fn program_headers(elf: &[u8]) -> Result<Vec<ProgramHeader>, ElfError> {
    if !elf.starts_with(b"\x7fELF\x02\x01") {
        return Err(ElfError::NotElf);
    }
    let header = |what| ElfError::Malformed(what);
    let phoff = usize::try_from(u64_at(elf, 32).ok_or(header("e_phoff"))?)
        .map_err(|_| header("e_phoff"))?;
    let phentsize = usize::from(u16_at(elf, 54).ok_or(header("e_phentsize"))?);
    let phnum = usize::from(u16_at(elf, 56).ok_or(header("e_phnum"))?);
    if phentsize < 56 {
        return Err(header("e_phentsize"));
    }
    (0..phnum)
        .map(|index| {
            let ph = phoff
                .checked_add(index * phentsize)
                .ok_or(header("e_phoff"))?;
            Ok(ProgramHeader {
                kind: u32_at(elf, ph).ok_or(header("program header"))?,
                flags: u32_at(elf, ph + 4).ok_or(header("p_flags"))?,
                offset: u64_at(elf, ph + 8).ok_or(header("p_offset"))?,
                file_size: u64_at(elf, ph + 32).ok_or(header("p_filesz"))?,
            })
        })
        .collect()
}

/// Where in the file the segments are that the loader maps read-only (`PT_LOAD` without
/// `PF_W`: code, read-only data), as file offsets.
pub(crate) fn read_only_loads(elf: &[u8]) -> Result<Vec<Range<u64>>, ElfError> {
    Ok(program_headers(elf)?
        .into_iter()
        .filter(|ph| ph.kind == PT_LOAD && ph.flags & PF_W == 0)
        .map(|ph| ph.offset..ph.offset.saturating_add(ph.file_size))
        .collect())
}

/// The PVH entry address of an ELF kernel.
pub(crate) fn pvh_entry(elf: &[u8]) -> Result<u32, ElfError> {
    if u16_at(elf, 18) != Some(EM_X86_64) {
        return Err(ElfError::NotElf);
    }
    let header = |what| ElfError::Malformed(what);
    for ph in program_headers(elf)? {
        if ph.kind != PT_NOTE {
            continue;
        }
        let start = usize::try_from(ph.offset).map_err(|_| header("p_offset"))?;
        let end = usize::try_from(ph.offset.saturating_add(ph.file_size))
            .map_err(|_| header("p_filesz"))?;
        let notes = elf.get(start..end).ok_or(header("note segment"))?;
        if let Some(entry) = find_note(notes)? {
            return Ok(entry);
        }
    }
    Err(ElfError::NoPvhNote)
}

/// The PVH entry in a run of notes, if there.
fn find_note(mut notes: &[u8]) -> Result<Option<u32>, ElfError> {
    let malformed = || ElfError::Malformed("note");
    let align4 = |n: usize| n.div_ceil(4) * 4;
    while notes.len() >= 12 {
        let namesz = u32_at(notes, 0).ok_or_else(malformed)? as usize;
        let descsz = u32_at(notes, 4).ok_or_else(malformed)? as usize;
        let kind = u32_at(notes, 8).ok_or_else(malformed)?;
        let name_end = 12 + align4(namesz);
        let desc_end = name_end.checked_add(align4(descsz)).ok_or_else(malformed)?;
        let name = notes.get(12..12 + namesz).ok_or_else(malformed)?;
        if name == b"Xen\0" && kind == XEN_ELFNOTE_PHYS32_ENTRY && descsz >= 4 {
            return Ok(Some(u32_at(notes, name_end).ok_or_else(malformed)?));
        }
        notes = notes.get(desc_end..).ok_or_else(malformed)?;
    }
    Ok(None)
}

/// A little-endian u16 at `at`.
fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        bytes.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

/// A little-endian u32 at `at`.
fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        bytes.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// A little-endian u64 at `at`.
fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        bytes.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One note: name, type, descriptor, each padded to 4 bytes.
    fn note(name: &[u8], kind: u32, desc: &[u8]) -> Vec<u8> {
        let pad = |v: &mut Vec<u8>| v.resize(v.len().div_ceil(4) * 4, 0);
        let mut out = Vec::new();
        out.extend_from_slice(&u32::try_from(name.len()).expect("small").to_le_bytes());
        out.extend_from_slice(&u32::try_from(desc.len()).expect("small").to_le_bytes());
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(name);
        pad(&mut out);
        out.extend_from_slice(desc);
        pad(&mut out);
        out
    }

    /// A minimal x86-64 ELF with one PT_LOAD and one PT_NOTE holding `notes`.
    pub(crate) fn tiny_elf(notes: &[u8]) -> Vec<u8> {
        let mut elf = vec![0u8; 64 + 2 * 56];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        elf[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
        elf[32..40].copy_from_slice(&64u64.to_le_bytes());
        elf[54..56].copy_from_slice(&56u16.to_le_bytes());
        elf[56..58].copy_from_slice(&2u16.to_le_bytes());
        elf[64..68].copy_from_slice(&PT_LOAD.to_le_bytes());
        let note_ph = 64 + 56;
        elf[note_ph..note_ph + 4].copy_from_slice(&PT_NOTE.to_le_bytes());
        let offset = elf.len() as u64;
        elf[note_ph + 8..note_ph + 16].copy_from_slice(&offset.to_le_bytes());
        elf[note_ph + 32..note_ph + 40].copy_from_slice(&(notes.len() as u64).to_le_bytes());
        elf.extend_from_slice(notes);
        elf
    }

    /// Notes as a PVH kernel has them: the Linux ones, then Xen's with the entry.
    pub(crate) fn pvh_notes(entry: u32) -> Vec<u8> {
        [
            note(b"Linux\0", 6, b"6.1.0\0"),
            note(b"Xen\0", 6, b"linux\0"),
            note(b"Xen\0", XEN_ELFNOTE_PHYS32_ENTRY, &entry.to_le_bytes()),
        ]
        .concat()
    }

    #[test]
    fn finds_the_pvh_entry() {
        assert_eq!(
            pvh_entry(&tiny_elf(&pvh_notes(0x0100_0970))).expect("pvh"),
            0x0100_0970
        );
    }

    #[test]
    fn an_elf_without_the_note_is_not_pvh() {
        let notes = note(b"Linux\0", 6, b"6.1.0\0");
        assert!(matches!(
            pvh_entry(&tiny_elf(&notes)),
            Err(ElfError::NoPvhNote)
        ));
    }

    #[test]
    fn read_only_loads_are_the_loads_without_write() {
        // tiny_elf: a PT_LOAD (flags 0, offset 0, size 0) and a PT_NOTE; make it three
        // loads: read-only, read-execute and read-write.
        let mut elf = tiny_elf(&[]);
        let set = |elf: &mut Vec<u8>, index: usize, flags: u32, offset: u64, size: u64| {
            let ph = 64 + index * 56;
            elf[ph..ph + 4].copy_from_slice(&PT_LOAD.to_le_bytes());
            elf[ph + 4..ph + 8].copy_from_slice(&flags.to_le_bytes());
            elf[ph + 8..ph + 16].copy_from_slice(&offset.to_le_bytes());
            elf[ph + 32..ph + 40].copy_from_slice(&size.to_le_bytes());
        };
        elf.resize(64 + 3 * 56, 0);
        elf[56..58].copy_from_slice(&3u16.to_le_bytes());
        set(&mut elf, 0, 4, 0, 0x1000);
        set(&mut elf, 1, 5, 0x1000, 0x3000);
        set(&mut elf, 2, 6, 0x4000, 0x800);
        assert_eq!(
            read_only_loads(&elf).expect("elf"),
            vec![0..0x1000, 0x1000..0x4000]
        );
        elf.truncate(64 + 2 * 56);
        assert!(matches!(read_only_loads(&elf), Err(ElfError::Malformed(_))));
    }

    #[test]
    fn other_files_are_refused() {
        assert!(matches!(pvh_entry(b"MZ not an elf"), Err(ElfError::NotElf)));
        let mut elf = tiny_elf(&pvh_notes(1));
        elf.truncate(150);
        assert!(matches!(pvh_entry(&elf), Err(ElfError::Malformed(_))));
    }
}
