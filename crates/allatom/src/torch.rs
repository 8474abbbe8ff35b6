//! Limits on torch checkpoints before candle's pickle reader sees them.
//!
//! candle's reader builds the pickle's objects by value (a memo `GET` copies), and drops and
//! walks them recursively, so a small hostile `data.pkl` can overflow the stack (a list nested
//! a million deep) or ask for exponential memory (a tuple of two copies of itself, repeated).
//! [`check`] runs the pickle's opcodes on a stack of *shapes* — nesting depth and node count,
//! nothing else — and refuses the file, with the byte offset, when a value would pass
//! [`MAX_DEPTH`] or the whole passes [`MAX_NODES`]; `data.pkl` itself may not decompress past
//! [`MAX_PICKLE_BYTES`]. Real checkpoints sit far below all three (fair-esm's ESM-2 650M:
//! depth 6, a few thousand nodes, 20 KB).

use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};

/// Deepest nesting of containers a checkpoint's pickle may hold.
pub const MAX_DEPTH: u32 = 1000;
/// Most objects a checkpoint's pickle may build: in one value, or copied in all (every memo
/// write and read, and DUP, copies a whole value in candle's reader).
pub const MAX_NODES: u64 = 2_000_000;
/// Most values the pickle machine's stack, or its memo, may hold at once.
pub const MAX_STACK: usize = 1_000_000;
/// Largest `data.pkl` read (the tensors live in other zip entries).
pub const MAX_PICKLE_BYTES: u64 = 64 << 20;

/// The `data.pkl` bytes of a zip-format torch checkpoint, after [`check`]. A file that is not
/// a zip archive is named as the legacy (torch < 1.6) format.
pub fn data_pkl(path: &Path) -> Result<Vec<u8>> {
    let mut magic = [0u8; 2];
    let is_zip = std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && &magic == b"PK";
    if !is_zip {
        bail!(
            "{}: not a zip-format torch checkpoint (the legacy format of torch < 1.6, or not a checkpoint); \
             re-save it with torch >= 1.6: torch.save(torch.load(path), new_path)",
            path.display()
        );
    }
    let file = std::fs::File::open(path).with_context(|| path.display().to_string())?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .with_context(|| format!("{}: damaged zip archive", path.display()))?;
    let Some(name) = zip.file_names().filter_map(|n| n.ok()).find(|n| n.ends_with("data.pkl")).map(|n| n.to_string())
    else {
        bail!("{}: no data.pkl in the archive (not a torch checkpoint)", path.display());
    };
    let entry = zip.by_name(&name).with_context(|| format!("{}: {name}", path.display()))?;
    let mut bytes = Vec::new();
    entry
        .take(MAX_PICKLE_BYTES + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("{}: reading {name}", path.display()))?;
    if bytes.len() as u64 > MAX_PICKLE_BYTES {
        bail!(
            "{}: {name} is larger than {MAX_PICKLE_BYTES} bytes (the limit for a checkpoint's pickle)",
            path.display()
        );
    }
    check(&bytes).with_context(|| format!("{}: {name}", path.display()))?;
    Ok(bytes)
}

/// The shape of a value on the pickle machine's stack.
#[derive(Clone, Copy)]
enum Item {
    Mark,
    Value { depth: u32, nodes: u64 },
}

const LEAF: Item = Item::Value { depth: 1, nodes: 1 };

/// Runs the opcodes of `pkl` on shapes only; an error names the opcode offset and the limit.
/// Opcodes candle does not read are left for candle to refuse.
pub fn check(pkl: &[u8]) -> Result<()> {
    let mut stack: Vec<Item> = Vec::new();
    let mut memo: std::collections::HashMap<u64, Item> = std::collections::HashMap::new();
    // Objects candle builds by copying: memo writes and reads and DUP copy whole values.
    let mut copied: u64 = 0;
    let nodes_of = |i: Item| match i {
        Item::Mark => 0,
        Item::Value { nodes, .. } => nodes,
    };
    let mut pos = 0usize;
    let take = |pos: &mut usize, n: usize| -> Result<&[u8]> {
        let end = pos.checked_add(n).filter(|&e| e <= pkl.len()).context("pickle ends inside an opcode")?;
        let s = &pkl[*pos..end];
        *pos = end;
        Ok(s)
    };
    let le = |b: &[u8]| b.iter().rev().fold(0u64, |a, &x| (a << 8) | x as u64);
    while pos < pkl.len() {
        let at = pos;
        let op = pkl[pos];
        pos += 1;
        // Arguments: fixed size, length-prefixed, or up to a newline.
        let arg: u64 = match op {
            b'K' | b'U' | b'h' | b'q' | 0x80 | 0x82 | 0x8a | b'C' | 0x8c => le(take(&mut pos, 1)?),
            b'M' | 0x83 => le(take(&mut pos, 2)?),
            b'J' | b'T' | b'X' | b'j' | b'r' | 0x84 | 0x8b | b'B' => le(take(&mut pos, 4)?),
            b'G' | 0x8d | 0x8e | 0x95 | 0x96 => le(take(&mut pos, 8)?),
            b'F' | b'I' | b'L' | b'P' | b'S' | b'V' | b'g' | b'p' => {
                let n = pkl[pos..].iter().position(|&c| c == b'\n').context("pickle ends inside an opcode")?;
                let line = take(&mut pos, n + 1)?;
                if matches!(op, b'g' | b'p') {
                    std::str::from_utf8(&line[..n]).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(u64::MAX)
                } else {
                    0
                }
            }
            b'c' | b'i' => {
                for _ in 0..2 {
                    let n = pkl[pos..].iter().position(|&c| c == b'\n').context("pickle ends inside an opcode")?;
                    take(&mut pos, n + 1)?;
                }
                0
            }
            _ => 0,
        };
        // candle reads LONG1 into an i64 (more bytes overflow its shift).
        if op == 0x8a && arg > 8 {
            bail!("LONG1 of {arg} bytes at byte {at}: longer than an i64, not a checkpoint this reader accepts");
        }
        // Length-prefixed payloads.
        if matches!(op, b'U' | b'C' | 0x8c | b'T' | b'X' | b'B' | 0x8a | 0x8b | 0x8d | 0x8e | 0x96) {
            let n = usize::try_from(arg).ok().context("pickle payload too long")?;
            take(&mut pos, n)?;
        }
        let pop = |stack: &mut Vec<Item>| -> Result<(u32, u64)> {
            match stack.pop() {
                Some(Item::Value { depth, nodes }) => Ok((depth, nodes)),
                _ => bail!("opcode at byte {at} pops an empty stack"),
            }
        };
        let pop_mark = |stack: &mut Vec<Item>| -> Result<(u32, u64)> {
            let (mut depth, mut nodes) = (0, 0);
            loop {
                match stack.pop() {
                    Some(Item::Mark) => return Ok((depth, nodes)),
                    Some(Item::Value { depth: d, nodes: n }) => {
                        depth = depth.max(d);
                        nodes += n;
                    }
                    None => bail!("opcode at byte {at} finds no mark"),
                }
            }
        };
        // The value a container op builds from children of shape (depth, nodes).
        let build = |(depth, nodes): (u32, u64)| Item::Value { depth: depth + 1, nodes: nodes + 1 };
        let grow = |stack: &mut Vec<Item>, (d, n): (u32, u64)| -> Result<()> {
            match stack.last_mut() {
                Some(Item::Value { depth, nodes }) => {
                    *depth = (*depth).max(d + 1);
                    *nodes += n;
                    Ok(())
                }
                _ => bail!("opcode at byte {at} has nothing to add to"),
            }
        };
        let two = |stack: &mut Vec<Item>| -> Result<(u32, u64)> {
            let (a, b) = (pop(stack)?, pop(stack)?);
            Ok((a.0.max(b.0), a.1 + b.1))
        };
        match op {
            b'.' => return Ok(()),
            b'(' => stack.push(Item::Mark),
            b'0' => {
                stack.pop();
            }
            b'1' => {
                pop_mark(&mut stack)?;
            }
            b'2' => {
                let top = *stack.last().context("DUP on an empty stack")?;
                copied += nodes_of(top);
                stack.push(top);
            }
            b'F' | b'I' | b'J' | b'K' | b'L' | b'M' | b'N' | b'S' | b'T' | b'U' | b'V' | b'X' | b'G' | b'c' | 0x88
            | 0x89 | 0x8a | 0x8b | b'B' | b'C' | 0x8c | 0x8d | 0x8e | 0x96 | b'}' | b']' | b')' | 0x8f | 0x82
            | 0x83 | 0x84 => stack.push(LEAF),
            b'P' => stack.push(LEAF),
            b'Q' => {
                let v = pop(&mut stack)?;
                stack.push(build(v));
            }
            b't' | b'l' | b'd' | 0x91 | b'i' => {
                let v = pop_mark(&mut stack)?;
                stack.push(build(v));
            }
            b'o' => {
                let v = pop_mark(&mut stack)?;
                stack.push(build(v));
            }
            0x85 => {
                let v = pop(&mut stack)?;
                stack.push(build(v));
            }
            0x86 => {
                let v = two(&mut stack)?;
                stack.push(build(v));
            }
            0x87 => {
                let (a, b) = (two(&mut stack)?, pop(&mut stack)?);
                stack.push(build((a.0.max(b.0), a.1 + b.1)));
            }
            b'R' | 0x81 | b'b' | 0x93 => {
                let v = two(&mut stack)?;
                stack.push(if op == 0x93 { LEAF } else { build(v) });
            }
            0x92 => {
                let (a, b) = (two(&mut stack)?, pop(&mut stack)?);
                stack.push(build((a.0.max(b.0), a.1 + b.1)));
            }
            b'a' => {
                let v = pop(&mut stack)?;
                grow(&mut stack, v)?;
            }
            b's' => {
                let v = two(&mut stack)?;
                grow(&mut stack, v)?;
            }
            b'e' | b'u' | 0x90 => {
                let v = pop_mark(&mut stack)?;
                grow(&mut stack, v)?;
            }
            b'h' | b'j' | b'g' => {
                let v =
                    *memo.get(&arg).with_context(|| format!("opcode at byte {at} reads memo {arg}, never stored"))?;
                copied += nodes_of(v);
                stack.push(v);
            }
            b'q' | b'r' | b'p' => {
                let top = *stack.last().with_context(|| format!("opcode at byte {at} stores an empty stack"))?;
                copied += nodes_of(top);
                memo.insert(arg, top);
            }
            0x94 => {
                let top = *stack.last().with_context(|| format!("opcode at byte {at} stores an empty stack"))?;
                copied += nodes_of(top);
                memo.insert(memo.len() as u64, top);
            }
            _ => {}
        }
        if stack.len() > MAX_STACK || memo.len() > MAX_STACK {
            bail!("more than {MAX_STACK} values on the pickle's stack or memo (at byte {at})");
        }
        if let Some(&Item::Value { depth, nodes }) = stack.last() {
            if depth > MAX_DEPTH {
                bail!("objects nested deeper than {MAX_DEPTH} (at byte {at}): not a checkpoint this reader accepts");
            }
            if nodes.max(copied) > MAX_NODES {
                bail!("more than {MAX_NODES} objects (at byte {at}, copies included): not a checkpoint this reader accepts");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_nesting_and_copy_bombs_are_refused() {
        // [[[[...]]]] a million deep: EMPTY_LIST, then (EMPTY_LIST, APPEND) is not enough —
        // nesting comes from building inside out: EMPTY_LIST (TUPLE1 × n).
        let mut deep = vec![0x80, 2, b']'];
        deep.extend(std::iter::repeat_n(0x85u8, 1_000_000));
        deep.push(b'.');
        let e = check(&deep).unwrap_err().to_string();
        assert!(e.contains("nested deeper than 1000"), "{e}");
        // x = (); x = (x, x) forty times: 2^40 nodes by value from 200 bytes.
        let mut bomb = vec![0x80, 2, b')', b'q', 0];
        for _ in 0..40 {
            bomb.extend([b'h', 0, b'h', 0, 0x86, b'q', 0]);
        }
        bomb.push(b'.');
        let e = check(&bomb).unwrap_err().to_string();
        assert!(e.contains("more than 2000000 objects"), "{e}");
        // A value of 1,000 nodes read back from the memo 10,000 times, never combined: no
        // single value is large, the copies are.
        let mut wide = vec![0x80, 2, b'('];
        wide.extend(std::iter::repeat_n(b'N', 999));
        wide.extend([b'l', b'q', 0, b'0']);
        for _ in 0..10_000 {
            wide.extend([b'h', 0]);
        }
        wide.push(b'.');
        let e = check(&wide).unwrap_err().to_string();
        assert!(e.contains("objects"), "{e}");
        // A shallow dict is fine; a cut pickle is an error, not a panic.
        let ok = [0x80, 2, b'}', b'q', 0, b'X', 1, 0, 0, 0, b'a', b'K', 7, b's', b'.'];
        check(&ok).unwrap();
        assert!(check(&ok[..7]).is_err());
        // Found by the torch_pickle fuzz target: a 9-byte LONG1 overflowed candle's shift.
        let long = [0x80, 2, 0x8a, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9, b'.'];
        assert!(check(&long).unwrap_err().to_string().contains("LONG1 of 9 bytes"));
        check(&[0x80, 2, 0x8a, 8, 1, 2, 3, 4, 5, 6, 7, 8, b'.']).unwrap();
    }
}
