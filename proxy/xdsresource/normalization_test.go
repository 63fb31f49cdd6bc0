package xdsresource_test

import (
	"testing"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/proxy/xdsresource"
)

func TestHCMNormalization(t *testing.T) {
	tests := []struct {
		name    string
		mod     func(*hcmv3.HttpConnectionManager)
		want    xdsresource.Normalization
		wantErr string
	}{
		{name: "unset is the default"},
		{name: "reject", mod: func(h *hcmv3.HttpConnectionManager) {
			h.NormalizePath = wrapperspb.Bool(true)
			h.MergeSlashes = true
			h.PathWithEscapedSlashesAction = hcmv3.HttpConnectionManager_REJECT_REQUEST
		}, want: xdsresource.Normalization{EscapedSlashes: xdsresource.SlashReject}},
		{name: "decode and trusted hops", mod: func(h *hcmv3.HttpConnectionManager) {
			h.PathWithEscapedSlashesAction = hcmv3.HttpConnectionManager_UNESCAPE_AND_FORWARD
			h.XffNumTrustedHops = 2
		}, want: xdsresource.Normalization{EscapedSlashes: xdsresource.SlashDecode, TrustedHops: 2}},
		{name: "keep unchanged refused", mod: func(h *hcmv3.HttpConnectionManager) {
			h.PathWithEscapedSlashesAction = hcmv3.HttpConnectionManager_KEEP_UNCHANGED
		}, wantErr: "path_with_escaped_slashes_action"},
		{name: "redirect refused", mod: func(h *hcmv3.HttpConnectionManager) {
			h.PathWithEscapedSlashesAction = hcmv3.HttpConnectionManager_UNESCAPE_AND_REDIRECT
		}, wantErr: "UNESCAPE_AND_REDIRECT"},
		{name: "normalize_path false refused", mod: func(h *hcmv3.HttpConnectionManager) {
			h.NormalizePath = wrapperspb.Bool(false)
		}, wantErr: "normalize_path"},
		{name: "too many hops", mod: func(h *hcmv3.HttpConnectionManager) { h.XffNumTrustedHops = 17 }, wantErr: "xff_num_trusted_hops"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := xdsresource.DecodeListener(marshal(t, hcmListener(tt.mod)))
			if tt.wantErr != "" {
				checkResult(t, nil, err, nil, tt.wantErr)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := l.FilterChains[0].HTTP.Normalization; got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
