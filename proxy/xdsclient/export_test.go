package xdsclient

// Hooks that let the external tests reach the unexported wire code.

// TestRequest mirrors request for EncodeRequest.
type TestRequest struct {
	Version     string
	Node        *Node
	Names       []string
	TypeURL     string
	Nonce       string
	NackMessage string
}

// EncodeRequest encodes r as a DiscoveryRequest.
func EncodeRequest(r TestRequest) ([]byte, error) {
	req := request{
		version:     r.Version,
		names:       r.Names,
		typeURL:     r.TypeURL,
		nonce:       r.Nonce,
		nackMessage: r.NackMessage,
	}
	if r.Node != nil {
		n, err := encodeNode(*r.Node)
		if err != nil {
			return nil, err
		}
		req.node = n
	}
	return appendRequest(nil, req), nil
}

// DecodedResponse mirrors response.
type DecodedResponse struct {
	Version, TypeURL, Nonce string
	Resources               []DecodedAny
}

// DecodedAny mirrors anyValue.
type DecodedAny struct {
	TypeURL string
	Value   []byte
}

// DecodeResponse decodes a DiscoveryResponse.
func DecodeResponse(b []byte) (DecodedResponse, error) {
	r, err := decodeResponse(b)
	if err != nil {
		return DecodedResponse{}, err
	}
	d := DecodedResponse{Version: r.version, TypeURL: r.typeURL, Nonce: r.nonce}
	for _, a := range r.resources {
		d.Resources = append(d.Resources, DecodedAny{TypeURL: a.typeURL, Value: a.value})
	}
	return d, nil
}
