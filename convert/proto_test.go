package convert

import "google.golang.org/protobuf/proto"

var (
	proto_Unmarshal = proto.Unmarshal
	proto_Marshal   = proto.Marshal
	proto_String    = proto.String
	proto_Uint64    = proto.Uint64
	proto_Int32     = proto.Int32
)
