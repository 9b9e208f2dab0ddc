package net

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// nftConn is what this package needs from an nftables connection;
// *nftables.Conn (always opened AsLasting, so its one socket stays in the
// namespace it was opened in) implements it.
type nftConn interface {
	AddTable(*nftables.Table) *nftables.Table
	DelTable(*nftables.Table)
	AddChain(*nftables.Chain) *nftables.Chain
	AddRule(*nftables.Rule) *nftables.Rule
	AddSet(*nftables.Set, []nftables.SetElement) error
	SetAddElements(*nftables.Set, []nftables.SetElement) error
	SetDeleteElements(*nftables.Set, []nftables.SetElement) error
	ListTablesOfFamily(nftables.TableFamily) ([]*nftables.Table, error)
	Flush() error
	CloseLasting() error
}

// dialNFT opens an nftables connection in the calling thread's network
// namespace, for good: a conn that is not lasting would open a new socket
// on every Flush, in whatever namespace the calling thread is in then.
//
// The firewall goes in as one batch of a few messages per service, and the
// kernel acknowledges each before corral reads any: the default socket
// buffers (rmem/wmem_default, about 208 KiB) refuse the batch (EMSGSIZE)
// or drop acks (ENOBUFS) from a few hundred services on. The buffers are
// raised past the sysctl caps (root may); memory is only used while a
// batch is in flight.
func dialNFT() (nftConn, error) {
	c, err := nftables.New(nftables.AsLasting(), nftables.WithSockOptions(bigBuffers))
	if err != nil {
		// Not c: a nil *Conn in the interface is not a nil nftConn, and
		// the undo path would call CloseLasting on it.
		return nil, err
	}
	return c, nil
}

// nftBuffer is the send and receive buffer of the nftables socket: room
// for the batch and the acks of several thousand rules.
const nftBuffer = 32 << 20

func bigBuffers(c *netlink.Conn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for _, o := range []struct{ force, plain int }{{unix.SO_SNDBUFFORCE, unix.SO_SNDBUF}, {unix.SO_RCVBUFFORCE, unix.SO_RCVBUF}} {
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o.force, nftBuffer) != nil {
				// Without CAP_NET_ADMIN: as much as the sysctl caps allow.
				serr = errors.Join(serr, unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o.plain, nftBuffer))
			}
		}
	}); err != nil {
		return err
	}
	return serr
}

func nftFamily(f family) nftables.TableFamily {
	if f == familyBridge {
		return nftables.TableFamilyBridge
	}
	return nftables.TableFamilyIPv4
}

// installFirewall replaces corral's tables with fw's in one transaction:
// each table is added (a no-op when it exists), deleted, and made anew, so
// the batch works whether or not an earlier run left its tables, and the
// kernel either applies all of it or none.
func installFirewall(c nftConn, fw Firewall) error {
	for _, t := range fw.tables() {
		tb := &nftables.Table{Name: TableName, Family: nftFamily(t.family)}
		c.AddTable(tb)
		c.DelTable(tb)
		c.AddTable(tb)
		sets := map[string]*nftables.Set{}
		for _, s := range t.sets {
			ns := &nftables.Set{Table: tb, Name: s.name}
			switch s.key {
			case keyIfName:
				// Names compare as bytes; nft shows them only when told
				// they are in host order, as it makes them.
				ns.KeyType, ns.KeyByteOrder = nftables.TypeIFName, binaryutil.NativeEndian
			case keyUDPFlow:
				ns.KeyType = nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetService, nftables.TypeIPAddr, nftables.TypeInetService)
				ns.Concatenation, ns.KeyByteOrder = true, binaryutil.BigEndian
			}
			if s.timeout > 0 {
				ns.Dynamic, ns.HasTimeout, ns.Timeout = true, true, s.timeout
			}
			if err := c.AddSet(ns, nil); err != nil {
				return fmt.Errorf("encode set %s: %w", s.name, err)
			}
			sets[s.name] = ns
		}
		chains := map[string]*nftables.Chain{}
		for _, ch := range t.chains {
			nc := &nftables.Chain{Name: ch.name, Table: tb}
			if b := ch.base; b != nil {
				nc.Type = nftables.ChainType(b.typ)
				nc.Hooknum = hookNum(b.hook)
				prio := nftables.ChainPriority(b.prio)
				nc.Priority = &prio
				accept := nftables.ChainPolicyAccept
				nc.Policy = &accept
			}
			chains[ch.name] = c.AddChain(nc)
		}
		for _, ch := range t.chains {
			for _, r := range ch.rules {
				var exprs []expr.Any
				for _, m := range r.conds {
					exprs = append(exprs, condExprs(m, sets)...)
				}
				exprs = append(exprs, actionExprs(r.act, sets)...)
				c.AddRule(&nftables.Rule{Table: tb, Chain: chains[ch.name], Exprs: exprs})
			}
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("install nftables tables ip %s and bridge %s: %w (the kernel needs nf_tables with nat, masq, fib, ct and the bridge family)",
			TableName, TableName, err)
	}
	return nil
}

// removeFirewall deletes corral's tables, if they exist.
func removeFirewall(c nftConn) error {
	for _, f := range []nftables.TableFamily{nftables.TableFamilyIPv4, nftables.TableFamilyBridge} {
		tb := &nftables.Table{Name: TableName, Family: f}
		c.AddTable(tb)
		c.DelTable(tb)
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("delete nftables tables %s: %w", TableName, err)
	}
	return nil
}

// guard adds (or, with add false, removes) an interface to the ip table's
// guardSet.
func guard(c nftConn, ifname string, add bool) error {
	s := &nftables.Set{Table: &nftables.Table{Name: TableName, Family: nftables.TableFamilyIPv4}, Name: guardSet, KeyType: nftables.TypeIFName}
	el := []nftables.SetElement{{Key: ifnameBytes(ifname)}}
	var err error
	if add {
		err = c.SetAddElements(s, el)
	} else {
		err = c.SetDeleteElements(s, el)
	}
	if err == nil {
		err = c.Flush()
	}
	if err != nil && (add || !errors.Is(err, unix.ENOENT)) {
		op := "add"
		if !add {
			op = "remove"
		}
		return fmt.Errorf("%s %s in nftables set %s: %w", op, ifname, guardSet, err)
	}
	return nil
}

func hookNum(h string) *nftables.ChainHook {
	switch h {
	case "prerouting":
		return nftables.ChainHookPrerouting
	case "input":
		return nftables.ChainHookInput
	case "forward":
		return nftables.ChainHookForward
	case "output":
		return nftables.ChainHookOutput
	}
	return nftables.ChainHookPostrouting
}

// Registers: NFT_REG_1 is 16 bytes, the same storage as the 32-bit
// registers NFT_REG32_00 to _03, which a concatenation fills one field
// each.
const (
	reg1    = 1
	reg2    = 2
	reg3200 = 8
)

// ifnameBytes is an interface name as the kernel compares it: IFNAMSIZ
// bytes, NUL-padded.
func ifnameBytes(name string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b
}

func cmpOp(not bool) expr.CmpOp {
	if not {
		return expr.CmpOpNeq
	}
	return expr.CmpOpEq
}

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

func native32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

func payload(base expr.PayloadBase, offset, length uint32, reg uint32) *expr.Payload {
	return &expr.Payload{OperationType: expr.PayloadLoad, DestRegister: reg, Base: base, Offset: offset, Len: length}
}

// masked loads 4 bytes into reg1 through a mask and compares them with 0:
// "bits & mask != 0" (ct state, ct status).
func maskedNonZero(load expr.Any, mask uint32) []expr.Any {
	return []expr.Any{
		load,
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: native32(mask), Xor: native32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: native32(0)},
	}
}

// condExprs is what one cond loads and compares, as nft itself encodes
// it (compare `nft --debug=netlink`).
func condExprs(c cond, sets map[string]*nftables.Set) []expr.Any {
	switch c := c.(type) {
	case ifName:
		key := expr.MetaKeyIIFNAME
		if c.out {
			key = expr.MetaKeyOIFNAME
		}
		data := ifnameBytes(c.name)
		if c.prefix {
			data = []byte(c.name)
		}
		return []expr.Any{&expr.Meta{Key: key, Register: reg1}, &expr.Cmp{Op: cmpOp(c.not), Register: reg1, Data: data}}
	case inSet:
		s := sets[c.set]
		return []expr.Any{&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: reg1}, &expr.Lookup{SourceRegister: reg1, SetName: s.Name, SetID: s.ID}}
	case etherType:
		return []expr.Any{&expr.Meta{Key: expr.MetaKeyPROTOCOL, Register: reg1}, &expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: be16(c.t)}}
	case ipAddr:
		off := uint32(12)
		if c.dst {
			off = 16
		}
		out := []expr.Any{payload(expr.PayloadBaseNetworkHeader, off, 4, reg1)}
		if bits := c.p.Bits(); bits < 32 {
			mask := binary.BigEndian.AppendUint32(nil, ^uint32(0)<<(32-bits))
			out = append(out, &expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: mask, Xor: []byte{0, 0, 0, 0}})
		}
		a := c.p.Masked().Addr().As4()
		return append(out, &expr.Cmp{Op: cmpOp(c.not), Register: reg1, Data: a[:]})
	case arpSAddr:
		a := c.a.As4()
		// htype(2) ptype(2) hlen(1) plen(1) oper(2) sha(6), then spa.
		return []expr.Any{payload(expr.PayloadBaseNetworkHeader, 14, 4, reg1), &expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: a[:]}}
	case l4proto:
		n := byte(unix.IPPROTO_TCP)
		switch c.p {
		case UDP:
			n = unix.IPPROTO_UDP
		case icmpProto:
			n = unix.IPPROTO_ICMP
		}
		return []expr.Any{&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1}, &expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{n}}}
	case portIs:
		off := uint32(0)
		if c.dst {
			off = 2
		}
		return []expr.Any{payload(expr.PayloadBaseTransportHeader, off, 2, reg1), &expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: be16(c.port)}}
	case tcpNotNew:
		const syn, ack = 0x02, 0x10
		return []expr.Any{
			payload(expr.PayloadBaseTransportHeader, 13, 1, reg1),
			&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 1, Mask: []byte{syn | ack}, Xor: []byte{0}},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: []byte{syn}},
		}
	case icmpType:
		return []expr.Any{payload(expr.PayloadBaseTransportHeader, 0, 1, reg1), &expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{c.t}}}
	case ctState:
		return maskedNonZero(&expr.Ct{Register: reg1, Key: expr.CtKeySTATE}, expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED)
	case ctDNAT:
		const ipsDstNAT = 1 << 5 // IPS_DST_NAT, include/uapi/linux/netfilter/nf_conntrack_common.h
		return maskedNonZero(&expr.Ct{Register: reg1, Key: expr.CtKeySTATUS}, ipsDstNAT)
	case fibLocal:
		return []expr.Any{
			&expr.Fib{Register: reg1, FlagDADDR: true, ResultADDRTYPE: true},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: native32(unix.RTN_LOCAL)},
		}
	case udpFlow:
		// The answer's destination . port . source . port is the
		// exchange's source . port . destination . port.
		s := sets[udpFlowSet]
		return []expr.Any{
			payload(expr.PayloadBaseNetworkHeader, 16, 4, reg3200),
			payload(expr.PayloadBaseTransportHeader, 2, 2, reg3200+1),
			payload(expr.PayloadBaseNetworkHeader, 12, 4, reg3200+2),
			payload(expr.PayloadBaseTransportHeader, 0, 2, reg3200+3),
			&expr.Lookup{SourceRegister: reg3200, SetName: s.Name, SetID: s.ID},
		}
	}
	panic(fmt.Sprintf("net: no encoding for firewall match %T", c))
}

func actionExprs(a action, sets map[string]*nftables.Set) []expr.Any {
	switch a := a.(type) {
	case verdict:
		k := expr.VerdictAccept
		if a == "drop" {
			k = expr.VerdictDrop
		}
		return []expr.Any{&expr.Verdict{Kind: k}}
	case jump:
		return []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: a.chain}}
	case dnatTo:
		ip := a.addr.As4()
		return []expr.Any{
			&expr.Immediate{Register: reg1, Data: ip[:]},
			&expr.Immediate{Register: reg2, Data: be16(a.port)},
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: reg1, RegProtoMin: reg2, Specified: true},
		}
	case masquerade:
		return []expr.Any{&expr.Masq{}}
	case updateFlow:
		s := sets[udpFlowSet]
		return []expr.Any{
			payload(expr.PayloadBaseNetworkHeader, 12, 4, reg3200),
			payload(expr.PayloadBaseTransportHeader, 0, 2, reg3200+1),
			payload(expr.PayloadBaseNetworkHeader, 16, 4, reg3200+2),
			payload(expr.PayloadBaseTransportHeader, 2, 2, reg3200+3),
			&expr.Dynset{SrcRegKey: reg3200, SetName: s.Name, SetID: s.ID, Operation: unix.NFT_DYNSET_OP_UPDATE, Timeout: udpFlowTimeout},
		}
	}
	panic(fmt.Sprintf("net: no encoding for firewall action %T", a))
}
