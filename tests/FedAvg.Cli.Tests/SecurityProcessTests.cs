using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using System.Text.RegularExpressions;
using Akka.Actor;
using Akka.Configuration;
using Akka.Serialization;
using FedAvg.Actors.Hosting;
using FedAvg.Cli;
using FedAvg.Actors.Messages;
using FedAvg.Actors.Serialization;
using FedAvg.Core.Runtime;
using FedAvg.Tests.Shared;

namespace FedAvg.Cli.Tests;

/// <summary>
/// Issue 12 end to end: certificates from `fedavg certs`, `fedavg server` and `fedavg node` with mutual TLS over real
/// loopback sockets, peers that must be refused, hostile bytes, and secrets that must not leak. Every process is
/// killed in Dispose, whatever the test did.
/// </summary>
[Collection("processes")]
public sealed class SecurityProcessTests : FederationProcessTest
{
    readonly List<IDisposable> others = [];

    public override void Dispose()
    {
        base.Dispose();
        foreach (var o in others) o.Dispose();
    }

    async Task<(FedavgProcess Server, int Port)> StartServer(string outDir, int rounds, string[] tls, params string[] extra)
    {
        var server = Launch("server", ["server", .. Run(outDir, rounds), "--port", "0", .. tls, .. extra]);
        var listening = await server.WaitForLine(@"listening at akka(\.ssl)?\.tcp://fedavg@127\.0\.0\.1:(\d+)", Start);
        return (server, int.Parse(listening.Groups[2].Value));
    }

    /// <summary>
    /// A TLS `fedavg server` on ROOT/run whose run lasts until the test ends, with a certificate from the CA "alpha";
    /// the test issues its nodes from the same CA.
    /// </summary>
    async Task<(string Ca, string ServerBundle, string Run, FedavgProcess Server, int Port)> StartTlsServer(int startClients)
    {
        var (ca, _) = MakeCa("alpha");
        string serverBundle = Issue(ca, "server", "server"), run = Path.Combine(root, "run");
        var (server, port) = await StartServer(run, 100_000, Tls(serverBundle), "--start-clients", startClients.ToString());
        return (ca, serverBundle, run, server, port);
    }

    static int LastRound(FedavgProcess server) =>
        Regex.Matches(server.Output, @"^round (\d+)/", RegexOptions.Multiline).Select(m => int.Parse(m.Groups[1].Value)).DefaultIfEmpty(0).Max();

    [Fact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")] // file modes are Unix's; the project runs on Linux
    public void Certs_writes_an_owner_only_ca_key_and_node_pfx_that_chain_to_the_ca_and_refuses_a_directory_that_is_not_a_ca()
    {
        var (ca, passwordFile) = MakeCa("alpha");
        string bundle = Issue(ca, "node-a");
        foreach (var secret in new[] { Path.Combine(ca, "ca.key"), Path.Combine(bundle, "node-a.pfx") })
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(secret));
        using var cert = X509CertificateLoader.LoadPkcs12FromFile(Path.Combine(bundle, "node-a.pfx"), Password);
        Assert.True(cert.HasPrivateKey);
        Assert.Equal("client", FederationCertificates.RoleOf(cert));
        using var security = new TransportSecurity(X509CertificateLoader.LoadCertificate(cert.RawData),
            TransportSecurity.LoadCaCertificate(Path.Combine(bundle, "ca.crt"), "--tls-ca"));
        Assert.Null(security.Check(cert));
        Assert.Equal(File.ReadAllText(Path.Combine(ca, "ca.crt")), File.ReadAllText(Path.Combine(bundle, "ca.crt")));

        // the password never appears in what the commands print
        var (code, error, output) = Fedavg("certs", "issue", "node-b", "--ca", ca, "--out", Path.Combine(root, "node-b"), "--password-file", passwordFile);
        Assert.Equal(0, code);
        Assert.DoesNotContain(Password, error + output);

        string notCa = Directory.CreateDirectory(Path.Combine(root, "not-a-ca")).FullName;
        (code, error, _) = Fedavg("certs", "issue", "x", "--ca", notCa, "--out", Path.Combine(root, "x"));
        Assert.Equal(ExitCodes.UsageError, code);
        Assert.Contains($"--ca {notCa} is not a federation CA directory: ca.crt is missing", error);
        (code, error, _) = Fedavg("certs", "init", "--out", ca);
        Assert.Equal((ExitCodes.UsageError, true), (code, error.Contains("already holds a CA")));
        Assert.DoesNotContain("   at ", error);
    }

    [Fact]
    public async Task Bad_tls_input_is_refused_at_start_naming_the_file_and_the_reason()
    {
        var (ca, passwordFile) = MakeCa("alpha");
        string bundle = Issue(ca, "node-a");
        string pfx = Path.Combine(bundle, "node-a.pfx"), caCrt = Path.Combine(bundle, "ca.crt");
        string wrong = Path.Combine(root, "wrong.txt");
        File.WriteAllText(wrong, "not the password\n");
        string expiredDir = Path.Combine(root, "expired");
        string expired = FederationCertificates.Issue("expired", ca, expiredDir, "client", null, Password, [],
            DateTimeOffset.UtcNow.AddMinutes(-4), DateTimeOffset.UtcNow.AddMinutes(-1)); // the CA is valid from 5 minutes ago
        string emptyDir = Directory.CreateDirectory(Path.Combine(root, "empty")).FullName;

        (string[] Tls, string Expected)[] cases =
        [
            (["--tls-cert", Path.Combine(root, "missing.pfx"), "--tls-ca", caCrt], $"--tls-cert {Path.Combine(root, "missing.pfx")}: file not found"),
            (["--tls-cert", pfx, "--tls-ca", caCrt, "--tls-password-file", wrong], $"--tls-cert {pfx}: wrong password (--tls-password-file {wrong})"),
            (["--tls-cert", pfx, "--tls-ca", caCrt], $"--tls-cert {pfx}: wrong password (no password given"),
            (["--tls-cert", expired, "--tls-ca", caCrt, "--tls-password-file", passwordFile], $"--tls-cert {expired}: the certificate 'CN=expired, OU=client, O=fedavg federation' expired on"),
            (["--tls-cert", Path.Combine(bundle, "node-a.crt"), "--tls-ca", caCrt, "--tls-password-file", passwordFile], "without its private key"),
            (["--tls-cert", pfx, "--tls-ca", emptyDir, "--tls-password-file", passwordFile], $"--tls-ca {emptyDir} is a directory without ca.crt: it is not a federation CA"),
            (["--tls-cert", pfx, "--tls-ca", Path.Combine(bundle, "node-a.crt"), "--tls-password-file", passwordFile], "is not a CA certificate"),
            (["--tls-cert", pfx, "--tls-password-file", passwordFile], "--tls-cert needs --tls-ca"),
            (["--tls-cert", pfx, "--tls-ca", caCrt, "--tls-password-file", passwordFile, "--insecure"], "--insecure turns TLS off"),
            (["--tls-cert", pfx, "--tls-ca", caCrt, "--tls-password-file", Path.Combine(root, "nope.txt")], $"--tls-password-file {Path.Combine(root, "nope.txt")}: file not found"),
            // with TLS a node's id is its certificate's name: another --node-id is said at start, not refused at the join
            (["--tls-cert", pfx, "--tls-ca", caCrt, "--tls-password-file", passwordFile, "--node-id", "hospital-7"],
                $"--node-id hospital-7: with TLS a node's id is the name of its certificate, 'node-a' ({pfx})"),
        ];
        foreach (var (tls, expected) in cases)
        {
            var (code, error, _) = Fedavg(["node", "--join", "127.0.0.1:4053", "--clients", "0-1", "--join-timeout", "1s", .. tls]);
            Assert.True(code == ExitCodes.UsageError && error.Contains(expected), $"{string.Join(' ', tls)} → {code}: {error}");
            Assert.DoesNotContain("   at ", error);
            Assert.DoesNotContain(Password, error);
        }
        // the same settings from HOCON (fedavg.cluster.tls in a --config file) are checked the same way, and each error names
        // the key the user wrote, not a flag they never gave; a flag over the file is named as the flag
        string conf = Path.Combine(root, "tls.conf");
        File.WriteAllText(conf, $"fedavg.cluster.tls {{\n  certificate = \"{expired}\"\n  ca = \"{caCrt}\"\n  password-file = \"{passwordFile}\"\n}}\n");
        (string[] Flags, string Expected, string Unexpected)[] layered =
        [
            ([], $"fedavg.cluster.tls.certificate = \"{expired}\": the certificate 'CN=expired, OU=client, O=fedavg federation' expired on", "--tls-cert"),
            (["--tls-cert", Path.Combine(root, "missing.pfx")], $"--tls-cert {Path.Combine(root, "missing.pfx")}: file not found", "fedavg.cluster.tls.certificate"),
            (["--tls-cert", pfx, "--tls-password-file", wrong], $"--tls-cert {pfx}: wrong password (--tls-password-file {wrong})", "fedavg.cluster.tls.password-file"),
            (["--tls-ca", emptyDir], $"--tls-ca {emptyDir} is a directory without ca.crt", "fedavg.cluster.tls.ca"),
            (["--insecure"], "--insecure turns TLS off; do not give fedavg.cluster.tls.certificate or fedavg.cluster.tls.ca with it", "--tls-"),
        ];
        foreach (var (flags, expected, unexpected) in layered)
        {
            var (code, error, _) = Fedavg(["node", "--join", "127.0.0.1:4053", "--clients", "0-1", "--join-timeout", "1s", "--config", conf, .. flags]);
            Assert.True(code == ExitCodes.UsageError && error.Contains(expected) && !error.Contains(unexpected), $"--config {conf} {string.Join(' ', flags)} → {code}: {error}");
            Assert.DoesNotContain("   at ", error);
        }
        File.WriteAllText(conf, $"fedavg.cluster.tls {{ certificate = \"{pfx}\", ca = \"{caCrt}\", password-file = \"{Path.Combine(root, "nope.txt")}\", insecure = maybe }}\n");
        var (hc, he, _) = Fedavg("node", "--join", "127.0.0.1:4053", "--clients", "0-1", "--config", conf);
        Assert.True(hc == ExitCodes.UsageError && he.Contains("fedavg.cluster.tls.insecure: 'maybe' is not a valid value") && !he.Contains("   at "), he);
        File.WriteAllText(conf, $"fedavg.cluster.tls {{ certificate = \"{pfx}\", ca = \"{caCrt}\", password-file = \"{Path.Combine(root, "nope.txt")}\" }}\n");
        (hc, he, _) = Fedavg("node", "--join", "127.0.0.1:4053", "--clients", "0-1", "--config", conf);
        Assert.True(hc == ExitCodes.UsageError && he.Contains($"fedavg.cluster.tls.password-file = \"{Path.Combine(root, "nope.txt")}\": file not found"), he);
        File.WriteAllText(conf, "fedavg.cluster.tls.password = \"hunter2\"\n");
        (hc, he, _) = Fedavg("node", "--join", "127.0.0.1:4053", "--clients", "0-1", "--config", conf);
        Assert.True(hc == ExitCodes.UsageError && he.Contains("fedavg.cluster.tls.password is not a setting") && !he.Contains("hunter2"), he);

        // a password from the environment is named by its variable (in a process of its own: this one's environment is shared)
        File.WriteAllText(conf, $"fedavg.cluster.tls {{ certificate = \"{pfx}\", ca = \"{caCrt}\" }}\n");
        var fromEnvironment = Launch("env", new Dictionary<string, string> { [TransportSecurity.PasswordVariable] = "not-the-password" },
            "node", "--join", "127.0.0.1:4053", "--clients", "0-1", "--config", conf);
        Assert.Equal(ExitCodes.UsageError, await fromEnvironment.WaitForExit(Start));
        Assert.Contains($"fedavg.cluster.tls.certificate = \"{pfx}\": wrong password (${TransportSecurity.PasswordVariable})", fromEnvironment.Output);
        Assert.DoesNotContain("not-the-password", fromEnvironment.Output);

        // a client certificate does not make a server
        var (c, e, _) = Fedavg(["server", .. Run(Path.Combine(root, "run"), 1), "--port", "0", .. Tls(bundle)]);
        Assert.True(c == ExitCodes.UsageError && e.Contains("issued for role 'client'") && e.Contains("--role server"), e);
    }

    [Fact]
    public async Task Off_loopback_plaintext_needs_insecure_which_warns_loudly_at_start()
    {
        var (code, error, _) = Fedavg(["server", .. Run(Path.Combine(root, "run"), 1), "--bind-hostname", "0.0.0.0", "--port", "0"]);
        Assert.True(code == ExitCodes.UsageError && error.Contains("--bind-hostname 0.0.0.0 is not a loopback address") && error.Contains("--insecure"), error);
        (code, error, _) = Fedavg("node", "--join", "127.0.0.1:4053", "--clients", "0-1", "--bind-hostname", "0.0.0.0");
        Assert.True(code == ExitCodes.UsageError && error.Contains("--insecure"), error);
        Assert.False(Directory.Exists(Path.Combine(root, "run")), "a refused server leaves no run directory");

        int nobody = FedavgProcess.FreePort();
        var node = StartNode("open", nobody, "0-1", "--bind-hostname", "0.0.0.0", "--insecure", "--join-timeout", "2s");
        Assert.Equal(ExitCodes.ServerUnreachable, await node.WaitForExit(Start));
        Assert.Contains("WARNING: INSECURE: plaintext TCP on 0.0.0.0", node.Output);
        Assert.Contains("(--insecure)", node.Output);

        // given in HOCON instead, the warning names the key the user wrote; a server's names its weight channel too
        string conf = Path.Combine(root, "insecure.conf");
        File.WriteAllText(conf, "fedavg.cluster.tls.insecure = on\n");
        var fromHocon = StartNode("open-hocon", nobody, "0-1", "--bind-hostname", "0.0.0.0", "--config", conf, "--join-timeout", "2s");
        Assert.Equal(ExitCodes.ServerUnreachable, await fromHocon.WaitForExit(Start));
        Assert.Contains("WARNING: INSECURE: plaintext TCP on 0.0.0.0", fromHocon.Output);
        Assert.Contains("(fedavg.cluster.tls.insecure)", fromHocon.Output);
        // Launch kills it when the test ends, whatever happens; "listening" comes after the warning
        var (server, _) = await StartServer(Path.Combine(root, "open-server"), 1, [], "--bind-hostname", "0.0.0.0", "--insecure");
        Assert.Matches(@"plaintext TCP on 0\.0\.0\.0:\d+ and the weight channel's (port|:\d+) \(--insecure\)", server.Output);
        server.Kill();
    }

    [Fact]
    public async Task A_node_revoked_while_the_server_runs_is_removed_from_the_federation_and_the_other_trains_on()
    {
        var (ca, serverBundle, run, server, port) = await StartTlsServer(startClients: 4);
        string keptBundle = Issue(ca, "node-a"), revokedBundle = Issue(ca, "node-b");
        var kept = StartNode("node-a", port, "0-1", Tls(keptBundle));
        var revoked = StartNode("node-b", port, "2-3", Tls(revokedBundle));
        await server.WaitForLine(@"^round 1/.* 4/4 clients", Start);

        // as the README says: revoke, then copy revoked.txt beside the server's ca.crt; no restart
        var (code, error, _) = Fedavg("certs", "revoke", Path.Combine(revokedBundle, "node-b.crt"), "--ca", ca);
        Assert.True(code == 0, error);
        File.Copy(Path.Combine(ca, "revoked.txt"), Path.Combine(serverBundle, "revoked.txt"));
        await server.WaitForLine(@"revoked\.txt changed: 1 revoked certificate\(s\) now \(1 added, 0 removed\)", Start);
        // seen at the next push or request of node-b's, which is then removed: told why, downed, its clients dropped
        await server.WaitForLine(@"removing node node-b at \S+ from the federation: the certificate 'CN=node-b[^']*' \(serial [0-9A-F]+\) is revoked", Start);
        var removed = await server.WaitForLine(@"node node-b at \S+ is removed from the federation \(its certificate is revoked\); its clients are dropped from round (\d+)", Start);
        int removedIn = int.Parse(removed.Groups[1].Value);

        // the revoked node exits non-zero with the reason, and is not a member any more
        Assert.Equal(ExitCodes.NodeRefused, await revoked.WaitForExit(TimeSpan.FromSeconds(60)));
        Assert.Matches(@"the server refused this node: the certificate 'CN=node-b[^']*' \(serial [0-9A-F]+\) is revoked .*; this node is removed from the federation", revoked.Output);

        // every later round samples node-a's 2 clients alone, and both train
        await server.WaitForLine($"^round {removedIn + 1}/", Start);
        var after = Rounds(run).Where(r => r.Round > removedIn).ToList();
        Assert.NotEmpty(after);
        Assert.All(after, r => Assert.Equal((2, 2, 0), (r.Sampled, r.Succeeded, r.Failed)));
        Assert.False(kept.Output.Contains("run is over"), kept.Output);
        // the node that stays got the revocation from the server, in force at once and kept beside its own ca.crt
        using var revokedCrt = X509CertificateLoader.LoadCertificateFromFile(Path.Combine(revokedBundle, "node-b.crt"));
        string serial = revokedCrt.GetSerialNumberString(), keptList = Path.Combine(keptBundle, "revoked.txt");
        await kept.WaitForLine($@"node: revoked 1 certificate\(s\) the server at \S+ revoked \({serial}\); added to {Regex.Escape(keptList)}", Start);
        Assert.Contains(serial, FederationCertificates.ReadRevoked(keptList));
        foreach (var p in new[] { server, kept, revoked }) Assert.DoesNotContain("   at ", p.Output);
    }

    [Fact]
    public async Task A_tls_federation_trains_two_rounds_with_the_bits_of_the_plaintext_run_and_no_secret_in_its_outputs()
    {
        var (ca, _) = MakeCa("alpha");
        string serverBundle = Issue(ca, "server", "server"), nodeBundle = Issue(ca, "node-a");

        string plain = Path.Combine(root, "plain");
        var (plainServer, plainPort) = await StartServer(plain, 2, [], "--start-clients", "4");
        var plainNode = StartNode("node-a", plainPort, "0-3");
        Assert.Equal(0, await plainServer.WaitForExit(TimeSpan.FromMinutes(3)));
        Assert.Equal(0, await plainNode.WaitForExit(TimeSpan.FromSeconds(60)));

        string tls = Path.Combine(root, "tls");
        var (server, port) = await StartServer(tls, 2, Tls(serverBundle), "--start-clients", "4");
        Assert.Contains("listening at akka.ssl.tcp://", server.Output);
        var node = StartNode("node-a", port, "0-3", Tls(nodeBundle));
        Assert.Equal(0, await server.WaitForExit(TimeSpan.FromMinutes(3)));
        Assert.Equal(0, await node.WaitForExit(TimeSpan.FromSeconds(60)));

        Assert.Equal(FinalWeights(plain), FinalWeights(tls));
        Assert.Equal(Rounds(plain).Select(r => (r.TestAccuracy, r.TestLoss, r.MeanTrainLoss)), Rounds(tls).Select(r => (r.TestAccuracy, r.TestLoss, r.MeanTrainLoss)));
        Assert.Contains("up at akka.ssl.tcp://", node.Output);

        // secrets: the password and the private keys appear nowhere a run leaves text
        string serverKey = Convert.ToBase64String(X509CertificateLoader.LoadPkcs12FromFile(Path.Combine(serverBundle, "server.pfx"), Password,
            X509KeyStorageFlags.Exportable).GetECDsaPrivateKey()!.ExportPkcs8PrivateKey());
        string caKey = File.ReadAllText(Path.Combine(ca, "ca.key"));
        foreach (var (what, text) in new[]
                 {
                     ("server log", server.Output), ("node log", node.Output),
                     ("config.conf", File.ReadAllText(Path.Combine(tls, "config.conf"))), ("summary.json", File.ReadAllText(Path.Combine(tls, "summary.json"))),
                 })
        {
            Assert.False(text.Contains(Password), $"{what} holds the password");
            Assert.False(text.Contains(serverKey[..40]) || text.Contains("PRIVATE KEY") || text.Contains(caKey.Split('\n')[1]), $"{what} holds a private key");
        }
    }

    [Fact]
    public async Task Peers_without_a_certificate_from_another_ca_or_in_plaintext_are_refused_and_the_server_keeps_training()
    {
        var (ca, _, run, server, port) = await StartTlsServer(startClients: 2);
        var (otherCa, _) = MakeCa("mallory");
        string goodBundle = Issue(ca, "node-a"), evilBundle = Issue(otherCa, "evil");
        var good = StartNode("node-a", port, "0-1", Tls(goodBundle));
        await server.WaitForLine(@"^round 1/", Start);

        // a TLS client that presents no certificate at all
        using (var tcp = new TcpClient())
        {
            await tcp.ConnectAsync(IPAddress.Loopback, port);
            using var ssl = new SslStream(tcp.GetStream(), false, (_, _, _, _) => true);
            // refused at the handshake, or closed right after it with nothing sent back (with TLS 1.3 the client's side of
            // the handshake ends before the server has judged its certificate); a connection still open after 30 s fails
            int answered;
            try
            {
                await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = "server" });
                await ssl.WriteAsync(new byte[64]);
                await ssl.FlushAsync();
                answered = await ReadToEnd(ssl);
            }
            catch (Exception e) when (e is System.Security.Authentication.AuthenticationException or IOException)
            {
                answered = 0;
            }
            Assert.Equal(0, answered);
        }
        await server.WaitForLine(@"(did not provide a certificate|presented no certificate) from \[.*127\.0\.0\.1\]:\d+|Mutual TLS required but client did not provide a certificate", TimeSpan.FromSeconds(30));

        var evil = StartNode("evil", port, "2-3", Tls(evilBundle));
        Assert.Equal(ExitCodes.NodeRefused, await evil.WaitForExit(Start));
        Assert.Contains("TLS handshake with the server", evil.Output);
        Assert.DoesNotContain("answered in plaintext", evil.Output); // a TLS server that refused it, not a plaintext one
        await server.WaitForLine(@"TLS: refused the connection with \[.*127\.0\.0\.1\]:\d+: the certificate 'CN=evil, OU=client, O=fedavg federation' \(issuer 'CN=mallory CA.*is not signed by the federation's CA", TimeSpan.FromSeconds(10));

        // a standby with another CA's server certificate: refused at the handshake too, and told so (it used to say that no
        // server answered within its join-timeout, exit 5)
        var evilStandby = Launch("evil-standby", ["server", .. Run(Path.Combine(root, "evil-standby-run"), 100_000), "--port", "0",
            "--standby-of", $"127.0.0.1:{port}", .. Tls(Issue(otherCa, "evil-standby", "server"))]);
        int standbyCode = await evilStandby.WaitForExit(Start);
        Assert.True(standbyCode == ExitCodes.NodeRefused, $"exit {standbyCode}:\n{evilStandby.Output}");
        Assert.Matches(@"the TLS handshake with the server at 127\.0\.0\.1:\d+ failed \(.+\): the server refused this standby's certificate", evilStandby.Output);

        var plaintext = StartNode("plain", port, "2-3", "--join-timeout", "5s");
        Assert.Equal(ExitCodes.ServerUnreachable, await plaintext.WaitForExit(Start));
        Assert.Contains("If the server runs with TLS, give this node --tls-cert and --tls-ca", plaintext.Output);
        await server.WaitForLine(@"Rejected incoming connection from \[.*127\.0\.0\.1\]:\d+\] due to TLS handshake failure", TimeSpan.FromSeconds(10));

        // on top of the transport: an authenticated node that asks for another federation is refused by name, on both sides
        var stranger = StartNode("stranger", port, "2-3", [.. Tls(Issue(ca, "stranger")), "--federation", "other"]);
        Assert.Equal(ExitCodes.NodeRefused, await stranger.WaitForExit(Start));
        Assert.Contains("the server refused this node", stranger.Output);
        Assert.Contains("'other'", stranger.Output);
        await server.WaitForLine("refusing node stranger at akka.ssl.tcp://.*'other'", TimeSpan.FromSeconds(10));

        int seen = LastRound(server);
        await server.WaitForLine($"^round {seen + 1}/", Start);
        // a line that names them, not a line that is their name (the collection overload compares whole elements)
        var membership = server.Output.Split('\n').Where(l => l.Contains("joined") || l.Contains("registered")).ToList();
        Assert.DoesNotContain(membership, l => l.Contains("evil"));
        Assert.DoesNotContain(membership, l => l.Contains("stranger"));
        Assert.All(Rounds(run), r => Assert.Equal((2, 2, 0), (r.Sampled, r.Succeeded, r.Failed)));
        Assert.False(good.Output.Contains("run is over"), good.Output);
        foreach (var p in new[] { server, good, evil, evilStandby, plaintext, stranger }) Assert.DoesNotContain("   at ", p.Output);
    }

    [Fact]
    public async Task A_tls_node_or_standby_facing_a_plaintext_server_is_told_the_server_runs_without_tls()
    {
        // The reverse of the plaintext node above: this side speaks TLS, and the server, which waits out its own 15 s
        // handshake-timeout, answers with a plaintext Akka frame. Akka.Remote's reason for the shutdown names no cause;
        // the node and the standby say which of the handshake's failures it was, and what to do.
        var (server, port) = await StartServer(Path.Combine(root, "plain-run"), 100_000, []);
        var (ca, _) = MakeCa("alpha");
        var node = StartNode("node-a", port, "0-1", Tls(Issue(ca, "node-a")));
        var standby = Launch("standby", ["server", .. Run(Path.Combine(root, "standby-run"), 100_000), "--port", "0",
            "--standby-of", $"127.0.0.1:{port}", .. Tls(Issue(ca, "standby", "server"))]);
        foreach (var side in new[] { node, standby })
        {
            int code = await side.WaitForExit(Start);
            Assert.True(code == ExitCodes.NodeRefused, $"exit {code}:\n{side.Output}");
            Assert.Matches($@"the TLS handshake with the server at 127\.0\.0\.1:{port} failed \(.+\): it answered in plaintext, so it runs without TLS\. " +
                           "Start the server with --tls-cert and --tls-ca", side.Output);
            Assert.DoesNotContain("   at ", side.Output);
        }
        Assert.False(server.HasExited, server.Output); // a plaintext run, which nothing of this touched
    }

    /// <summary>A message of the attacker's choice: the bytes and manifest that <see cref="FuzzSerializer"/> puts on the wire.</summary>
    public sealed record Fuzz(string Manifest, byte[] Bytes);

    /// <summary>Claims FedAvgSerializer's identifier, so the receiving node decodes these bytes with the real FedAvgSerializer.</summary>
    public sealed class FuzzSerializer(ExtendedActorSystem system) : SerializerWithStringManifest(system)
    {
        public override int Identifier => FedAvgSerializer.Id;
        public override string Manifest(object o) => ((Fuzz)o).Manifest;
        public override byte[] ToBinary(object obj) => ((Fuzz)obj).Bytes;
        public override object FromBinary(byte[] bytes, string manifest) => new Fuzz(manifest, bytes);
    }

    /// <summary>Bytes that claim to be Akka's JSON (serializer id 1) with a type name: what the fallback would have read.</summary>
    public sealed record Json(string Text);

    /// <summary>Serializer id 1 with a type manifest that resolves anywhere, so the receiver gets as far as its id-1 serializer.</summary>
    public sealed class JsonClaimSerializer(ExtendedActorSystem system) : SerializerWithStringManifest(system)
    {
        public JsonClaimSerializer(ExtendedActorSystem system, Config _) : this(system)
        {
        }

        public override int Identifier => RefusingSerializer.JsonIdentifier;
        public override string Manifest(object o) => typeof(object).AssemblyQualifiedName!;
        public override byte[] ToBinary(object obj) => System.Text.Encoding.UTF8.GetBytes(((Json)obj).Text);
        public override object FromBinary(byte[] bytes, string manifest) => new Json(System.Text.Encoding.UTF8.GetString(bytes));
    }

    [Fact]
    public async Task Hostile_bytes_from_strangers_and_from_an_authenticated_peer_are_refused_with_a_reason_and_the_server_keeps_training()
    {
        var (ca, _, run, server, port) = await StartTlsServer(startClients: 2);
        string goodBundle = Issue(ca, "node-a"), peerBundle = Issue(ca, "fuzzer");
        var good = StartNode("node-a", port, "0-1", Tls(goodBundle));
        await server.WaitForLine(@"^round 1/", Start);
        var random = new Random(12);

        // 1. random bytes to the port, before any handshake
        using (var tcp = new TcpClient())
        {
            await tcp.ConnectAsync(IPAddress.Loopback, port);
            var junk = new byte[4096];
            random.NextBytes(junk);
            junk[0] = 0x2d; // not a TLS record type
            await tcp.GetStream().WriteAsync(junk);
            Assert.Equal(0, await ReadToEnd(tcp.GetStream()));
        }
        int rejected = await CountRejections(server, 1);

        // 2. a plaintext Akka association to the TLS port
        using (var plain = ActorSystem.Create("fedavg", ConfigurationFactory.ParseString("""
                   akka.actor.provider = remote
                   akka.loglevel = ERROR
                   akka.remote.dot-netty.tcp { hostname = "127.0.0.1", port = 0 }
                   """)))
        {
            plain.ActorSelection($"akka.tcp://fedavg@127.0.0.1:{port}/user/coordinator/singleton").Tell("hello");
            rejected = await CountRejections(server, rejected + 1);
        }

        // 3. an authenticated peer (a certificate of the federation's CA) that sends an oversized frame, then random frames
        using var peerTls = LoadPeer(peerBundle);
        await server.WaitForLine(@"^round \d+/", Start);
        foreach (var frame in new[] { Frame(64 * 1024 * 1024, 1024, random), Frame(300, 300, random), Frame(40, 40, random) })
        {
            using var tcp = new TcpClient();
            await tcp.ConnectAsync(IPAddress.Loopback, port);
            using var ssl = new SslStream(tcp.GetStream(), false, (_, c, _, _) => c is X509Certificate2 x && peerTls.Check(x) is null);
            await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
            {
                TargetHost = "server", ClientCertificates = [peerTls.Certificate],
            });
            await ssl.WriteAsync(frame);
            await ssl.FlushAsync();
            await ReadToEnd(ssl);
        }
        await server.WaitForLine(@"TooLongFrameException: Adjusted frame length exceeds 128000", TimeSpan.FromSeconds(30));
        await server.WaitForLines(@"Error while decoding incoming Akka PDU of length \d+", 2, TimeSpan.FromSeconds(30));

        // 4. from an authenticated actor system: 1,000 fuzzed payloads of every manifest, decoded by the server's FedAvgSerializer,
        //    and bytes that claim Akka's JSON serializer with a type name
        var config = ConfigurationFactory.ParseString($$"""
            akka.actor.provider = remote
            akka.loglevel = ERROR
            akka.remote.dot-netty.tcp { hostname = "127.0.0.1", port = 0, enable-ssl = on }
            akka.actor.serializers { fuzz = "{{typeof(FuzzSerializer).AssemblyQualifiedName}}", json = "{{typeof(JsonClaimSerializer).AssemblyQualifiedName}}" }
            akka.actor.serialization-bindings { "{{typeof(Fuzz).AssemblyQualifiedName}}" = fuzz, "{{typeof(Json).AssemblyQualifiedName}}" = json }
            """);
        using var peer = ActorSystem.Create("fedavg", BootstrapSetup.Create().WithConfig(config).And(peerTls.Setup()));
        var local = new FedAvgSerializer((ExtendedActorSystem)peer);
        // the coordinator itself (not a selection, whose envelope would be decoded first): the payload is the whole message
        var coordinator = await peer.ActorSelection($"akka.ssl.tcp://fedavg@127.0.0.1:{port}/user/coordinator/singleton").ResolveOne(TimeSpan.FromSeconds(30));
        int expectedRefusals = 0, sent = 0;
        foreach (var manifest in FedAvgSerializer.AllManifests)
            for (int i = 0; i < 1000; i++)
            {
                var bytes = new byte[random.Next(0, i % 10 == 0 ? 2000 : 120)];
                random.NextBytes(bytes);
                if (bytes.Length > 0 && random.Next(10) > 0) bytes[0] = FedAvgSerializer.FormatVersion;
                try
                {
                    local.FromBinary(bytes, manifest);
                }
                catch (System.Runtime.Serialization.SerializationException)
                {
                    expectedRefusals++;
                }
                coordinator.Tell(new Fuzz(manifest, bytes), ActorRefs.NoSender);
                sent++;
            }
        // joins under node-a's id (a live node; with TLS its id is its certificate's name): with no proof, with the
        // peer's own certificate, and with node-a's certificate (public, NAME.crt) signed by the peer's key
        var self = ((ExtendedActorSystem)peer).Provider.DefaultAddress;
        var session = Guid.NewGuid();
        using var nodeCrt = X509CertificateLoader.LoadCertificateFromFile(Path.Combine(goodBundle, "node-a.crt"));
        var own = new NodeIdentity(peerTls).ProveJoin("fedavg", "node-a", session, self);
        var claimant = Inbox.Create(peer); // the sender of these joins, which the answers go to
        foreach (var proof in new NodeProof?[] { null, own, new(nodeCrt.RawData, own.Signature) })
            coordinator.Tell(new Fuzz("JF", local.ToBinary(new JoinFederation("node-a", "fedavg", new ClientRange(0, 1), session, proof))), claimant.Receiver);
        coordinator.Tell(new Json("""{"$type":"System.IO.FileInfo, System.IO.FileSystem","fileName":"/etc/passwd"}"""));
        coordinator.Tell(new Fuzz("ZZ-END", [1])); // messages of one association arrive in order: this one is read last
        await server.WaitForLine(@"Deserialization failed for message with serializer id \[4242\] and manifest \[ZZ-END\]", TimeSpan.FromMinutes(3));
        var refusals = server.Output.Split('\n').Where(l => l.Contains("Deserialization failed for message with serializer id [4242]")).ToList();
        Assert.Equal(expectedRefusals + 1, refusals.Count);
        Assert.True(expectedRefusals > 13 * 900, $"{expectedRefusals} of {sent} payloads were refused"); // nearly all random bytes are refused
        Assert.All(refusals, l => Assert.Matches(@"manifest \[\w+(-END)?\].*FedAvgSerializer: (malformed|unknown manifest)", l));
        Assert.True(Regex.IsMatch(server.Output, @"Deserialization failed for message with serializer id \[1\].*FedAvg.Actors accepts no JSON from the wire"),
            string.Join("\n", server.Output.Split('\n').Where(l => !l.Contains("[4242]") && !l.StartsWith("round "))));
        foreach (var why in new[] { "it proves no certificate", "it joins as node node-a with the certificate of 'fuzzer'", "its proof does not verify" })
        {
            // refused on both sides: the server's log, and the answer (this peer reads it as raw bytes: FuzzSerializer has FedAvgSerializer's id)
            await server.WaitForLine(Regex.Escape($"refusing node node-a at {self}: {why}"), TimeSpan.FromSeconds(30));
            var answer = Assert.IsType<Fuzz>(claimant.Receive(TimeSpan.FromSeconds(30)));
            var refused = Assert.IsType<InSession>(local.FromBinary(answer.Bytes, answer.Manifest));
            Assert.Equal(session, refused.Session);
            Assert.StartsWith(why, Assert.IsType<JoinRefused>(refused.Message).Reason);
        }

        // 5. the weight channel's own port: plaintext bytes where TLS is expected, then an authenticated peer that sends
        //    random bytes, and one that announces an upload of 2^31 − 1 weights
        int dataPort = int.Parse(Regex.Match(server.Output, @"weight channel at 127\.0\.0\.1:(\d+) \(mutual TLS\)").Groups[1].Value);
        using (var tcp = new TcpClient())
        {
            await tcp.ConnectAsync(IPAddress.Loopback, dataPort);
            var junk = new byte[4096];
            random.NextBytes(junk);
            await tcp.GetStream().WriteAsync(junk);
            await ReadToEnd(tcp.GetStream());
        }
        await server.WaitForLine(@"weight channel: closed the connection from .*: TLS handshake failed", TimeSpan.FromSeconds(30));
        var hugeUpload = new byte[33];
        "FAW\u0001"u8.CopyTo(hugeUpload);
        hugeUpload[4] = 2;
        BitConverter.TryWriteBytes(hugeUpload.AsSpan(21), int.MaxValue);
        var randomRequest = new byte[4096];
        random.NextBytes(randomRequest);
        foreach (var request in new[] { randomRequest, hugeUpload })
        {
            using var tcp = new TcpClient();
            await tcp.ConnectAsync(IPAddress.Loopback, dataPort);
            using var ssl = new SslStream(tcp.GetStream(), false, (_, c, _, _) => c is X509Certificate2 x && peerTls.Check(x) is null);
            await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = "server", ClientCertificates = [peerTls.Certificate] });
            await ssl.WriteAsync(request);
            await ssl.FlushAsync();
            await ReadToEnd(ssl);
        }
        await server.WaitForLine(@"weight channel: closed the connection from .*: \d+ bytes that are not a request", TimeSpan.FromSeconds(30));
        await server.WaitForLine(@"weight channel: refused an upload from .*: an upload of 2147483647 weights", TimeSpan.FromSeconds(30));

        // the server is up, its cluster healthy (it trains on with its node), and nothing of it reached aggregation
        int seen = LastRound(server);
        await server.WaitForLine($"^round {seen + 2}/", Start);
        Assert.All(Rounds(run), r => Assert.Equal((2, 2, 0), (r.Sampled, r.Succeeded, r.Failed)));
        Assert.DoesNotContain("unreachable", server.Output);
        Assert.False(good.Output.Contains("run is over"), good.Output);
        Assert.DoesNotContain("   at ", server.Output);
    }

    TransportSecurity LoadPeer(string bundle)
    {
        var cert = X509CertificateLoader.LoadPkcs12FromFile(Path.Combine(bundle, Path.GetFileName(bundle) + ".pfx"), Password);
        var security = new TransportSecurity(cert, TransportSecurity.LoadCaCertificate(Path.Combine(bundle, "ca.crt"), "--tls-ca"));
        others.Add(security);
        return security;
    }

    /// <summary>Akka.Remote's framing: a little-endian 4-byte length, then the frame; here <paramref name="body"/> random bytes.</summary>
    static byte[] Frame(int declared, int body, Random random)
    {
        var frame = new byte[4 + body];
        BitConverter.TryWriteBytes(frame.AsSpan(0, 4), declared);
        random.NextBytes(frame.AsSpan(4));
        return frame;
    }

    /// <summary>Reads until the server closes the connection (it must); the bytes read.</summary>
    static async Task<int> ReadToEnd(Stream stream)
    {
        int total = 0;
        var buffer = new byte[4096];
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            int n;
            while ((n = await stream.ReadAsync(buffer, timeout.Token)) > 0) total += n;
        }
        catch (IOException)
        {
        }
        return total;
    }

    /// <summary>Waits until the server has logged <paramref name="count"/> connections refused at the TLS handshake; returns the count.</summary>
    static async Task<int> CountRejections(FedavgProcess server, int count)
    {
        await server.WaitForLines(@"Rejected incoming connection from \[.*\] due to TLS handshake failure", count, TimeSpan.FromSeconds(30));
        return count;
    }
}
