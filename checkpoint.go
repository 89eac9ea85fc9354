package registry

import (
	"encoding/base64"
	"strconv"
)

// MaxCheckpointLeaves bounds the leaves one checkpoint carries, so that a
// checkpoint stays far under MaxRecordSize (4096 leaves ≈ 150 KB).
const MaxCheckpointLeaves = 4096

// CheckpointBody is the body of a checkpoint record (subject: the author's
// peer ID). It states that the author's log, after appending Leaves to the
// log of size Prev, has Size entries and root hash Root.
//
// Wire format (never renumber): 1 size (uint) 2 root (32 bytes) 3 prev (uint)
// 4 leaves (array of record IDs as multihash bytes, exactly the entries
// [prev, size) in log order) 5 note (optional text: the C2SP tlog-checkpoint
// body, see CheckpointNote). Size > Prev and Size − Prev ≤
// MaxCheckpointLeaves. A record whose subject is not its author's peer ID
// is invalid.
type CheckpointBody struct {
	Size   uint64   `cbor:"1,keyasint" json:"size"`
	Root   []byte   `cbor:"2,keyasint" json:"root"`
	Prev   uint64   `cbor:"3,keyasint" json:"prev"`
	Leaves [][]byte `cbor:"4,keyasint" json:"leaves"`
	Note   string   `cbor:"5,keyasint,omitempty" json:"note,omitempty"`
	// The head of the author's audit log when it signed (entries and the
	// newest entry's SHA-256), pinning that log against a rewrite. Both
	// absent, or both present.
	AuditSize uint64 `cbor:"6,keyasint,omitempty" json:"audit_size,omitempty"`
	AuditHead []byte `cbor:"7,keyasint,omitempty" json:"audit_head,omitempty"`
}

// CheckpointOrigin is the log's origin line in the C2SP tlog-checkpoint
// format: "wcr/" followed by the author's peer ID.
func CheckpointOrigin(peerID string) string { return "wcr/" + peerID }

// CheckpointNote returns the C2SP tlog-checkpoint note body of a log head:
// "<origin>\n<size>\n<base64 root>\n". A standard witness can cosign it.
func CheckpointNote(peerID string, size uint64, root Hash) string {
	return CheckpointOrigin(peerID) + "\n" + strconv.FormatUint(size, 10) + "\n" +
		base64.StdEncoding.EncodeToString(root[:]) + "\n"
}

// NewCheckpointBody builds the body of a checkpoint of an author's log,
// with its note.
func NewCheckpointBody(peerID string, prev uint64, leaves []ID, root Hash) *CheckpointBody {
	b := &CheckpointBody{Size: prev + uint64(len(leaves)), Root: root[:], Prev: prev, Leaves: make([][]byte, len(leaves))}
	for i, id := range leaves {
		b.Leaves[i] = id.Bytes()
	}
	b.Note = CheckpointNote(peerID, b.Size, root)
	return b
}

func (b *CheckpointBody) validate(subject string) error {
	const op = "registry.CheckpointBody"
	if _, err := ParsePeerID(subject); err != nil {
		return E(op, EINVALID, "a checkpoint's subject is its author's peer ID", err)
	}
	if len(b.Root) != sha256Size {
		return Errorf(op, EINVALID, "root must be %d bytes, got %d", sha256Size, len(b.Root))
	}
	if b.Size <= b.Prev {
		return Errorf(op, EINVALID, "size %d must be larger than prev %d", b.Size, b.Prev)
	}
	if b.Size-b.Prev > MaxCheckpointLeaves {
		return Errorf(op, EINVALID, "a checkpoint carries at most %d leaves, not %d", MaxCheckpointLeaves, b.Size-b.Prev)
	}
	if uint64(len(b.Leaves)) != b.Size-b.Prev {
		return Errorf(op, EINVALID, "%d leaves for the entries [%d, %d)", len(b.Leaves), b.Prev, b.Size)
	}
	for i, l := range b.Leaves {
		if _, err := IDFromBytes(l); err != nil {
			return E(op, EINVALID, "leaf "+strconv.Itoa(i), err)
		}
	}
	if (b.AuditSize == 0) != (len(b.AuditHead) == 0) || (len(b.AuditHead) != 0 && len(b.AuditHead) != sha256Size) {
		return Errorf(op, EINVALID, "an audit head is an entry count with a %d-byte hash, or absent", sha256Size)
	}
	if b.Note != "" && b.Note != CheckpointNote(subject, b.Size, hashOf(b.Root)) {
		return Errorf(op, EINVALID, "the note is not the tlog-checkpoint text of this size and root")
	}
	return nil
}

// Checkpoint is a decoded checkpoint record.
type Checkpoint struct {
	Record *Record
	Size   uint64
	Prev   uint64
	Root   Hash
	Leaves []ID
}

// ID returns the record's ID.
func (c *Checkpoint) ID() ID { return c.Record.ID() }

// Time returns the signed time (Unix ms).
func (c *Checkpoint) Time() int64 { return c.Record.Time }

// Author returns the signer.
func (c *Checkpoint) Author() PublicKey { return c.Record.Author }

// ParseCheckpoint decodes and checks a checkpoint record's body; EINVALID
// when r is not a valid checkpoint.
func ParseCheckpoint(r *Record) (*Checkpoint, error) {
	const op = "registry.ParseCheckpoint"
	if r.Kind != KindCheckpoint {
		return nil, Errorf(op, EINVALID, "record %s is a %s, not a checkpoint", r.ID(), r.Kind)
	}
	v, err := r.DecodeBody()
	if err != nil {
		return nil, err
	}
	b := v.(*CheckpointBody)
	c := &Checkpoint{Record: r, Size: b.Size, Prev: b.Prev, Root: hashOf(b.Root), Leaves: make([]ID, len(b.Leaves))}
	for i, l := range b.Leaves {
		copy(c.Leaves[i][:], l)
	}
	return c, nil
}
