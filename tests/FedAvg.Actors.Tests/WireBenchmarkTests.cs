using FedAvg.Actors.Hosting;
using FedAvg.Actors.Transfer;
using Xunit;

namespace FedAvg.Actors.Tests;

/// <summary>
/// `fedavg bench wire`'s rigs run end to end on real sockets and actor systems, on a small vector: each path checks what
/// its receivers got (length and checksum, or the AEAD tag of every sealed chunk), so a rig that moved the wrong bytes
/// fails here instead of printing a figure. No timing is asserted: that is the benchmark's job.
/// </summary>
public sealed class WireBenchmarkTests : IDisposable
{
    readonly string root = Directory.CreateTempSubdirectory("fedavg-wire-").FullName;
    static readonly TimeSpan Limit = TimeSpan.FromMinutes(2);

    public void Dispose() => Directory.Delete(root, recursive: true);

    static float[] Vector(int n) => Enumerable.Range(0, n).Select(i => MathF.Sin(i)).ToArray();

    [Fact]
    public async Task The_broadcast_rig_moves_the_vector_over_every_path_to_every_node()
    {
        // 300,001 floats: not a whole number of 256 KiB windows or 64 KiB chunks
        var cast = await WireBenchmark.MeasureBroadcast(Vector(300_001), nodes: 2, repeats: 1).WaitAsync(Limit);
        Assert.Equal(2 * 300_001 * 4 / 1e6, cast.Megabytes, 9);
        foreach (var seconds in new[] { cast.ChannelSeconds, cast.AkkaSeconds, cast.RawTcpSeconds, cast.MessageSeconds, cast.FetchSeconds, cast.PushSeconds, cast.ChannelAkkaReplySeconds })
            Assert.True(seconds > 0 && double.IsFinite(seconds), $"{seconds}");
        Assert.InRange(cast.PushedShare, 0, 1);
    }

    [Fact]
    public async Task The_tls_rig_and_the_sealed_and_bare_tls_anchors_deliver_to_every_node()
    {
        string ca = Path.Combine(root, "ca");
        FederationCertificates.Init(ca, "bench", null, 2).Dispose();
        var now = DateTimeOffset.UtcNow;
        string pfx = FederationCertificates.Issue("bench", ca, Path.Combine(root, "node"), FederationCertificates.RoleClient, null, null, [],
            now.AddMinutes(-5), now.AddDays(1));
        using var tls = new TransportSecurity(TransportSecurity.LoadNodeCertificate(pfx, null, "none"),
            TransportSecurity.LoadCaCertificate(Path.Combine(ca, FederationCertificates.CaCertificateFile), "--tls-ca"));
        // a sealed chunk that failed its tag would end the receiver, and its round would never be acknowledged
        var secure = await WireBenchmark.MeasureBroadcastWithTls(Vector(300_001), nodes: 2, repeats: 1, tls).WaitAsync(Limit);
        foreach (var seconds in new[] { secure.PlaintextSeconds, secure.TlsSeconds, secure.PlaintextStreamSeconds, secure.TlsStreamSeconds,
                     secure.RawSeconds, secure.SealedSeconds, secure.RawTlsSeconds })
            Assert.True(seconds > 0 && double.IsFinite(seconds), $"{seconds}");
    }

    [Fact]
    public void The_codec_figures_are_rates_of_the_same_bytes()
    {
        var codec = WireBenchmark.MeasureCodec(Vector(100_000), repeats: 3);
        foreach (var rate in new[] { codec.EncodeMBps, codec.DecodeMBps, codec.MemcpyMBps, codec.HashMBps })
            Assert.True(rate > 0 && double.IsFinite(rate), $"{rate}");
    }
}
