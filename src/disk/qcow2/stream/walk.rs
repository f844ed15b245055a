//! The walk over the stream: one host cluster at a time, its bytes handed to the L1 table, the
//! L2 tables and the active claims that want them, the rest spilled; and the end of the stream.
use super::*;

impl StreamDecoder {
    /// A decoder for an image with this (validated) header.
    pub(super) fn new(name: String, header: Header, piece: u64, alloc: Alloc) -> Self {
        let lay = Layout {
            cluster_bits: header.cluster_bits,
            extended_l2: header.extended_l2,
            data_file: false,
            zero_flag: header.version >= 3,
        };
        let cs = lay.cluster_size();
        let l1_bytes = header.l1_size as u64 * 8;
        // The refcount table is metadata nothing maps; knowing it (and the blocks it lists)
        // spares spilling them. Header::parse checked it is aligned, at most 8 MiB and ends
        // below 2^63; one at offset 0 (which qemu accepts) overlaps the header and is not used.
        let rt_off = header.refcount_table_offset;
        let rt_len = (header.refcount_table_clusters as u64) << lay.cluster_bits;
        let reftable = if rt_off != 0 {
            (rt_off, rt_off + rt_len)
        } else {
            (0, 0)
        };
        StreamDecoder {
            name,
            size: header.size,
            lay,
            cs,
            compression: header.compression,
            piece: piece.max(1),
            claim_limit: MAX_PENDING_CLAIMS,
            alloc,
            pos: 0,
            carry: Vec::new(),
            l1_off: header.l1_offset,
            l1_bytes,
            l1: if l1_bytes == 0 {
                L1State::Done
            } else {
                L1State::Pending(Vec::new())
            },
            l2_queue: Vec::new(),
            l2_next: 0,
            deferred: Vec::new(),
            pending: BTreeMap::new(),
            seq: 0,
            active: Vec::new(),
            active_compressed_bytes: 0,
            reftable,
            reftable_buf: None,
            refblocks: BTreeSet::new(),
            spill: Spill::default(),
            stats: StreamStats::default(),
        }
    }

    /// How compressed clusters of this image are compressed.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// The cluster size (what a compressed cluster decodes to).
    pub fn cluster_size(&self) -> u64 {
        self.cs
    }

    /// The name errors use.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Lowers the number of claims kept before further L2 tables are spilled and resolved at
    /// the end of the stream (default [`MAX_PENDING_CLAIMS`]): less memory, more spill.
    pub fn set_claim_limit(&mut self, claims: usize) {
        self.claim_limit = claims;
    }

    pub(super) fn bad(&self, why: String) -> Error {
        Error::bad_image(&self.name, why)
    }

    /// True once every L2 table is known: no claim can appear any more, so bytes nobody
    /// claimed are not needed.
    pub(super) fn all_known(&self) -> bool {
        matches!(self.l1, L1State::Done)
            && self.l2_next >= self.l2_queue.len()
            && self.deferred.is_empty()
    }

    /// Consumes the next bytes of the stream (any length).
    pub fn feed(&mut self, mut bytes: &[u8], emit: Emit) -> Result<()> {
        let cs = self.cs as usize;
        if !self.carry.is_empty() {
            let n = (cs - self.carry.len()).min(bytes.len());
            self.carry.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.carry.len() == cs {
                let c = std::mem::take(&mut self.carry);
                self.cluster(&c, emit)?;
            }
        }
        while bytes.len() >= cs {
            self.cluster(&bytes[..cs], emit)?;
            bytes = &bytes[cs..];
        }
        self.carry.extend_from_slice(bytes);
        Ok(())
    }

    /// Ends the stream: resolves what is left and reports what cannot be.
    pub fn finish(&mut self, emit: Emit) -> Result<StreamStats> {
        if !self.carry.is_empty() {
            let c = std::mem::take(&mut self.carry);
            self.cluster(&c, emit)?;
        }
        let eof = self.pos;
        if matches!(self.l1, L1State::Pending(_)) {
            return Err(self.bad(format!(
                "the stream ended after {eof} bytes, before the end of its L1 table (offset {:#x}, {} bytes): the image is truncated",
                self.l1_off, self.l1_bytes
            )));
        }
        if let Some(&(t, idx)) = self.l2_queue.get(self.l2_next) {
            return Err(self.bad(format!(
                "the L2 table for guest offset {:#x} at offset {t:#x} lies beyond the end of the stream ({eof} bytes): the image is truncated or corrupt",
                idx as u64 * self.lay.l2_span()
            )));
        }
        for (idx, t) in std::mem::take(&mut self.deferred) {
            let words = self.table_from_spill(t)?;
            self.register_l2(idx, &words, emit)?;
        }
        // Stale bytes of zero clusters may lie past the end of the file; nothing reads them.
        let wanted = self.pending.iter().find_map(|(&(host, _), c)| match c {
            Claim::Data { guest, .. } | Claim::Compressed { guest, .. } => Some((host, *guest)),
            Claim::Discard { .. } => None,
        });
        if let Some((host, guest)) = wanted {
            return Err(self.bad(format!(
                "data for guest offset {guest:#x} at offset {host:#x} lies beyond the end of the stream ({eof} bytes): the image is truncated or corrupt"
            )));
        }
        for a in std::mem::take(&mut self.active) {
            match a {
                Active::Discard { .. } => {}
                Active::Data { next, guest, .. } => {
                    return Err(self.bad(format!(
                        "data for guest offset {guest:#x} at offset {next:#x} lies beyond the end of the stream ({eof} bytes): the image is truncated or corrupt"
                    )))
                }
                // The sector-rounded length may run past the end of the file (the last
                // cluster): decode what there is, as the file reader does.
                Active::Compressed {
                    host,
                    guest,
                    out,
                    mut buf,
                    filled,
                } => {
                    buf.truncate(filled);
                    emit(Event::Compressed {
                        guest,
                        host,
                        input: buf,
                        len: out,
                    })?;
                }
            }
        }
        self.active_compressed_bytes = 0;
        self.stats.bytes_read = eof;
        self.stats.bytes_spilled = self.spill.written();
        Ok(self.stats.clone())
    }

    /// Handles the host cluster at `self.pos` (`data` is shorter only at the end of the
    /// stream): hands its bytes to the tables and claims that want them, spills the rest,
    /// then registers what became known.
    pub(super) fn cluster(&mut self, data: &[u8], emit: Emit) -> Result<()> {
        let h = self.pos;
        let end = h + data.len() as u64;
        let at = |s: u64, e: u64| &data[(s - h) as usize..(e - h) as usize];
        // Host ranges of this cluster taken by something known: not spilled.
        let mut covered: Vec<(u64, u64)> = Vec::new();
        if h == 0 {
            covered.push((0, end)); // the header
        }
        let mut l1_done = false;
        if let L1State::Pending(buf) = &mut self.l1 {
            if let Some((s, e)) = overlap(h, end, self.l1_off, self.l1_off + self.l1_bytes) {
                if buf.is_empty() {
                    // At most 32 MiB: the header capped it.
                    buf.reserve_exact(self.l1_bytes as usize);
                }
                buf.extend_from_slice(at(s, e));
                covered.push((s, e));
                l1_done = buf.len() as u64 == self.l1_bytes;
            }
        }
        let mut reftable_done = false;
        if let Some((s, e)) = overlap(h, end, self.reftable.0, self.reftable.1) {
            covered.push((s, e));
            // At most 8 MiB: larger tables were not taken.
            let buf = self.reftable_buf.get_or_insert_with(Vec::new);
            buf.extend_from_slice(at(s, e));
            reftable_done = buf.len() as u64 == self.reftable.1 - self.reftable.0;
        }
        if self.refblocks.remove(&h) {
            covered.push((h, end));
        }

        // L2 tables at this cluster (several L1 entries may name the same one).
        let first = self.l2_next;
        while self
            .l2_queue
            .get(self.l2_next)
            .is_some_and(|&(t, _)| t < end)
        {
            self.l2_next += 1;
        }
        let tables = self.l2_queue[first..self.l2_next].to_vec();
        let mut registered = false;
        if !tables.is_empty() {
            if data.len() as u64 != self.cs {
                return Err(self.bad(format!(
                    "the stream ended after {end} bytes, inside the L2 table at offset {h:#x}: the image is truncated"
                )));
            }
            let per_l2 = self.lay.l2_entries() as usize;
            if self.pending.len() + tables.len() * per_l2 > self.claim_limit {
                // Too many claims already: spill the table and resolve it at the end.
                self.deferred.extend(tables.iter().map(|&(t, i)| (i, t)));
                self.stats.tables_deferred += tables.len() as u64;
            } else {
                covered.push((h, end));
                registered = true;
            }
        }

        // Claims the stream reaches here.
        while let Some(entry) = self.pending.first_entry() {
            if entry.key().0 >= end {
                break;
            }
            let ((host, _), claim) = entry.remove_entry();
            self.activate(host, claim)?;
        }
        let mut active = std::mem::take(&mut self.active);
        let mut result = Ok(());
        active.retain_mut(|a| {
            if result.is_err() {
                return true;
            }
            match self.deliver(a, h, data, &mut covered, &mut *emit) {
                Ok(keep) => keep,
                Err(e) => {
                    result = Err(e);
                    true
                }
            }
        });
        self.active = active;
        result?;

        if !self.all_known() {
            self.spill_uncovered(h, data, &mut covered)?;
        }
        self.pos = end;

        if reftable_done {
            if let Some(buf) = self.reftable_buf.take() {
                for w in be_words(&buf) {
                    let b = w & REFTABLE_OFFSET_MASK;
                    if b >= self.pos
                        && b.is_multiple_of(self.cs)
                        && self.refblocks.len() < MAX_REFBLOCKS
                    {
                        self.refblocks.insert(b);
                    }
                }
            }
        }
        if l1_done {
            if let L1State::Pending(buf) = std::mem::replace(&mut self.l1, L1State::Done) {
                self.on_l1(&be_words(&buf), emit)?;
            }
        }
        if registered {
            let words = be_words(data);
            for &(_, idx) in &tables {
                self.register_l2(idx, &words, emit)?;
            }
        }
        Ok(())
    }

    /// Makes a claim the stream has reached active, allocating its buffer.
    pub(super) fn activate(&mut self, host: u64, claim: Claim) -> Result<()> {
        match claim {
            Claim::Data { .. } | Claim::Discard { .. }
                if self
                    .active
                    .iter()
                    .filter(|a| !matches!(a, Active::Compressed { .. }))
                    .count()
                    >= MAX_ACTIVE_DATA =>
            {
                return Err(self.bad(format!(
                    "more than {MAX_ACTIVE_DATA} clusters claim the host bytes at offset {host:#x}: the image is corrupt (qemu-img check)"
                )));
            }
            Claim::Discard { len } => self.active.push(Active::Discard {
                next: host,
                end: host + len,
            }),
            Claim::Data { guest, len } => {
                self.active.push(Active::Data {
                    next: host,
                    end: host + len,
                    guest,
                    buf: Vec::new(),
                    filled: 0,
                });
            }
            Claim::Compressed { guest, clen, out } => {
                self.start_compressed(host, guest, clen, out)?;
            }
        }
        Ok(())
    }

    pub(super) fn start_compressed(
        &mut self,
        host: u64,
        guest: u64,
        clen: u64,
        out: usize,
    ) -> Result<()> {
        if self.active_compressed_bytes + clen > MAX_ACTIVE_COMPRESSED_BYTES {
            return Err(self.bad(format!(
                "compressed clusters overlapping at offset {host:#x} exceed {} MiB: the image is corrupt (qemu-img check)",
                MAX_ACTIVE_COMPRESSED_BYTES >> 20
            )));
        }
        self.active_compressed_bytes += clen;
        // clen is at most 4 MiB (13 bits of sectors at 2 MiB clusters).
        let buf = (self.alloc)(clen as usize);
        self.active.push(Active::Compressed {
            host,
            guest,
            out,
            buf,
            filled: 0,
        });
        Ok(())
    }

    /// Gives an active claim its bytes of the cluster `[h, h + data.len())`; returns whether it
    /// still wants more.
    pub(super) fn deliver(
        &mut self,
        a: &mut Active,
        h: u64,
        data: &[u8],
        covered: &mut Vec<(u64, u64)>,
        emit: Emit,
    ) -> Result<bool> {
        let end = h + data.len() as u64;
        match a {
            Active::Data {
                next,
                end: run_end,
                guest,
                buf,
                filled,
            } => {
                let Some((s, e)) = overlap(*next, *run_end, h, end) else {
                    return Ok(true);
                };
                covered.push((s, e));
                let mut src = &data[(s - h) as usize..(e - h) as usize];
                while !src.is_empty() {
                    if buf.is_empty() {
                        let to_boundary = self.piece - *guest % self.piece;
                        let len = to_boundary.min(*run_end - *next) as usize;
                        *buf = (self.alloc)(len);
                        *filled = 0;
                    }
                    let n = (buf.len() - *filled).min(src.len());
                    buf[*filled..*filled + n].copy_from_slice(&src[..n]);
                    *filled += n;
                    src = &src[n..];
                    *next += n as u64;
                    if *filled == buf.len() {
                        let bytes = std::mem::take(buf);
                        let g = *guest;
                        *guest += bytes.len() as u64;
                        emit(Event::Data { guest: g, bytes })?;
                    }
                }
                Ok(*next < *run_end)
            }
            Active::Discard { next, end: run_end } => {
                if let Some((s, e)) = overlap(*next, *run_end, h, end) {
                    covered.push((s, e));
                    *next = e;
                }
                Ok(*next < *run_end)
            }
            Active::Compressed {
                host,
                guest,
                out,
                buf,
                filled,
            } => {
                let cend = *host + buf.len() as u64;
                let Some((s, e)) = overlap(*host + *filled as u64, cend, h, end) else {
                    return Ok(true);
                };
                buf[*filled..*filled + (e - s) as usize]
                    .copy_from_slice(&data[(s - h) as usize..(e - h) as usize]);
                *filled += (e - s) as usize;
                // The last sector may hold the start of a cluster not known yet: keep it.
                if let Some(c) = overlap(s, e, 0, cend.saturating_sub(SECTOR)) {
                    covered.push(c);
                }
                if *filled < buf.len() {
                    return Ok(true);
                }
                self.active_compressed_bytes -= buf.len() as u64;
                emit(Event::Compressed {
                    guest: *guest,
                    host: *host,
                    input: std::mem::take(buf),
                    len: *out,
                })?;
                Ok(false)
            }
        }
    }

    /// Spills the bytes of the cluster at `h` that nothing known took.
    pub(super) fn spill_uncovered(
        &mut self,
        h: u64,
        data: &[u8],
        covered: &mut [(u64, u64)],
    ) -> Result<()> {
        covered.sort_unstable();
        let end = h + data.len() as u64;
        let mut at = h;
        for &(s, e) in covered.iter() {
            if s > at {
                self.spill
                    .write(at, &data[(at - h) as usize..(s - h) as usize])?;
            }
            at = at.max(e);
        }
        if at < end {
            self.spill.write(at, &data[(at - h) as usize..])?;
        }
        Ok(())
    }
}
