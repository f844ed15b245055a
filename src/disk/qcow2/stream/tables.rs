//! What a table says, once known: the L1 table queues L2 tables (or finds them in the spill),
//! an L2 table turns into zero runs, data from the spill for what the stream has passed, and
//! claims for what is still ahead.
use super::*;

impl StreamDecoder {
    /// The L1 table is complete: zeros for missing L2 tables, tables behind us from the spill,
    /// the others queued in stream order.
    pub(super) fn on_l1(&mut self, l1: &[u64], emit: Emit) -> Result<()> {
        let span = self.lay.l2_span();
        let mut zeros: Option<(u64, u64)> = None;
        let mut queue = Vec::new();
        let mut behind = Vec::new();
        for (idx, &e) in l1.iter().enumerate() {
            // idx < 4 Mi (the 32 MiB cap) and span <= 2^39: no overflow.
            let guest = idx as u64 * span;
            if guest >= self.size {
                break;
            }
            let t = e & OFFSET_MASK;
            if t == 0 {
                let len = span.min(self.size - guest);
                zeros = match zeros {
                    Some((g, l)) if g + l == guest => Some((g, l + len)),
                    other => {
                        if let Some((g, l)) = other {
                            emit(Event::Zero { guest: g, len: l })?;
                        }
                        Some((guest, len))
                    }
                };
                continue;
            }
            if !t.is_multiple_of(self.cs) {
                return Err(self.bad(format!(
                    "L2 table offset {t:#x} (guest offset {guest:#x}) is not cluster-aligned: the image is corrupt"
                )));
            }
            if t < self.pos {
                behind.push((idx as u32, t));
            } else {
                queue.push((t, idx as u32));
            }
        }
        if let Some((g, l)) = zeros {
            emit(Event::Zero { guest: g, len: l })?;
        }
        queue.sort_unstable();
        self.l2_queue = queue;
        self.l2_next = 0;
        let per_l2 = self.lay.l2_entries() as usize;
        for (idx, t) in behind {
            self.stats.tables_late += 1;
            if self.pending.len() + per_l2 > self.claim_limit {
                self.deferred.push((idx, t));
                self.stats.tables_deferred += 1;
                continue;
            }
            let words = self.table_from_spill(t)?;
            self.register_l2(idx, &words, emit)?;
        }
        Ok(())
    }

    pub(super) fn table_from_spill(&mut self, t: u64) -> Result<Vec<u64>> {
        if t.checked_add(self.cs).is_none_or(|e| e > self.pos) {
            return Err(self.bad(format!(
                "the L2 table at offset {t:#x} lies beyond the end of the stream ({} bytes): the image is truncated or corrupt",
                self.pos
            )));
        }
        let mut raw = vec![0u8; self.cs as usize];
        self.spill.read(t, &mut raw)?;
        Ok(be_words(&raw))
    }

    /// Registers the L2 table of L1 entry `idx`: zeros now, data behind the stream position
    /// from the spill, data ahead as claims.
    pub(super) fn register_l2(&mut self, idx: u32, table: &[u64], emit: Emit) -> Result<()> {
        let lay = self.lay;
        let cs = self.cs;
        let base = idx as u64 * lay.l2_span();
        let mut run: Option<Run> = None;
        for i in 0..lay.l2_entries() {
            let g = base + (i << lay.cluster_bits);
            if g >= self.size {
                break;
            }
            let (entry, bitmap) = lay.entry(table, i as usize);
            let mut in_c = 0;
            while in_c < cs {
                let goff = g + in_c;
                if goff >= self.size {
                    break;
                }
                let (m, n) = lay.classify(entry, bitmap, in_c).map_err(|why| {
                    self.bad(format!(
                        "L2 entry for guest offset {goff:#x}: {why}: the image is corrupt"
                    ))
                })?;
                // n >= 1 and ends at a subcluster or cluster end: the loop advances.
                let n = n.min(self.size - goff);
                let next = match m {
                    Mapping::Compressed(coff, clen) => {
                        if let Some(r) = run.take() {
                            self.place(r, emit)?;
                        }
                        let out = cs.min(self.size - g) as usize;
                        self.place_compressed(g, coff, clen, out, emit)?;
                        break;
                    }
                    Mapping::Data(h) => Run::new(goff, Kind::Data, h, n),
                    // classify checked the alignment of a non-compressed entry's offset.
                    Mapping::Zero | Mapping::Unallocated => match entry & OFFSET_MASK {
                        0 => Run::new(goff, Kind::Zero, 0, n),
                        h => Run::new(goff, Kind::OwnedZero, h + in_c, n),
                    },
                };
                run = match run {
                    Some(mut r) if r.continues_with(&next) => {
                        r.len += n;
                        Some(r)
                    }
                    other => {
                        if let Some(r) = other {
                            self.place(r, emit)?;
                        }
                        Some(next)
                    }
                };
                in_c += n;
            }
        }
        if let Some(r) = run {
            self.place(r, emit)?;
        }
        Ok(())
    }

    /// Hands out a run: zeros at once, data from the spill as far as the stream has passed
    /// it, the rest as a claim. The host bytes of an owned zero run are claimed to be dropped.
    pub(super) fn place(&mut self, r: Run, emit: Emit) -> Result<()> {
        if r.kind != Kind::Data {
            emit(Event::Zero {
                guest: r.guest,
                len: r.len,
            })?;
        }
        if r.kind == Kind::Zero {
            return Ok(());
        }
        // host < 2^56 (the offset mask) and len < 2^40 (one table's span): no overflow.
        let end = r.host + r.len;
        let behind = self.pos.clamp(r.host, end) - r.host;
        if behind > 0 && r.kind == Kind::Data {
            self.data_from_spill(r.host, r.guest, behind, emit)?;
        }
        if behind < r.len {
            let (guest, len) = (r.guest + behind, r.len - behind);
            let c = match r.kind {
                Kind::Data => Claim::Data { guest, len },
                _ => Claim::Discard { len },
            };
            self.claim(r.host + behind, c);
        }
        Ok(())
    }

    pub(super) fn claim(&mut self, host: u64, c: Claim) {
        self.seq += 1;
        self.pending.insert((host, self.seq), c);
    }

    pub(super) fn data_from_spill(
        &mut self,
        host: u64,
        guest: u64,
        len: u64,
        emit: Emit,
    ) -> Result<()> {
        let mut done = 0;
        while done < len {
            let g = guest + done;
            let n = (self.piece - g % self.piece).min(len - done);
            let mut buf = (self.alloc)(n as usize);
            self.spill.read(host + done, &mut buf)?;
            emit(Event::Data {
                guest: g,
                bytes: buf,
            })?;
            done += n;
        }
        Ok(())
    }

    pub(super) fn place_compressed(
        &mut self,
        guest: u64,
        coff: u64,
        clen: u64,
        out: usize,
        emit: Emit,
    ) -> Result<()> {
        // coff < 2^56 and clen <= 4 MiB: no overflow.
        if coff >= self.pos {
            self.claim(coff, Claim::Compressed { guest, clen, out });
            return Ok(());
        }
        if coff + clen <= self.pos {
            let mut input = (self.alloc)(clen as usize);
            self.spill.read(coff, &mut input)?;
            return emit(Event::Compressed {
                guest,
                host: coff,
                input,
                len: out,
            });
        }
        // Straddles the stream position: the start from the spill, the rest as it arrives.
        self.start_compressed(coff, guest, clen, out)?;
        let pos = self.pos;
        let spill = &self.spill;
        if let Some(Active::Compressed { buf, filled, .. }) = self.active.last_mut() {
            let n = (pos - coff) as usize;
            spill.read(coff, &mut buf[..n])?;
            *filled = n;
        }
        Ok(())
    }
}
