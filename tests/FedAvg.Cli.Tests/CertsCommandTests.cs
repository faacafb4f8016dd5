using System.Security.Cryptography.X509Certificates;
using FedAvg.Actors.Hosting;
using FedAvg.Cli;

namespace FedAvg.Cli.Tests;

/// <summary>
/// `fedavg certs` given bad input or an output it cannot write: a usage error naming the thing and the reason, no stack
/// trace, and nothing made or lost (the old CA key above all, which every certificate it signed depends on).
/// </summary>
[Collection("processes")]
public sealed class CertsCommandTests : FederationProcessTest
{
    static void AssertRefused(int code, string error, string expected)
    {
        Assert.True(code == ExitCodes.UsageError && error.Contains(expected), $"{code}: {error}");
        Assert.DoesNotContain("   at ", error);
    }

    static bool OwnerOnly(string path) =>
        OperatingSystem.IsWindows() || File.GetUnixFileMode(path) == (UnixFileMode.UserRead | UnixFileMode.UserWrite);

    /// <summary>The names of the entries in <paramref name="dir"/>, temp files included (they start with '.').</summary>
    static string[] Entries(string dir) => Directory.EnumerateFileSystemEntries(dir).Select(Path.GetFileName).Order().ToArray()!;

    [Fact]
    public void Init_force_and_issue_that_cannot_write_keep_the_old_files_and_leave_no_temp()
    {
        var (ca, passwordFile) = MakeCa("alpha");
        string key = Path.Combine(ca, "ca.key"), crt = Path.Combine(ca, "ca.crt");
        byte[] oldKey = File.ReadAllBytes(key);

        // ca.crt cannot be replaced (a directory is in its place): the old ca.key must stay, not a new key without its certificate
        File.Move(crt, crt + ".old");
        Directory.CreateDirectory(crt);
        var (code, error, _) = Fedavg("certs", "init", "--out", ca, "--force");
        AssertRefused(code, error, $"--out {ca}: cannot write ca.key, ca.crt ({crt} is a directory); nothing in it was changed");
        Assert.Equal(oldKey, File.ReadAllBytes(key));
        Assert.True(OwnerOnly(key));
        Assert.Equal(["ca.crt", "ca.crt.old", "ca.key"], Entries(ca));

        // with ca.crt back, --force replaces both, a pair that signs again, the key still owner-only
        Directory.Delete(crt);
        File.Move(crt + ".old", crt);
        (code, error, _) = Fedavg("certs", "init", "--out", ca, "--force");
        Assert.True(code == 0, error);
        Assert.NotEqual(oldKey, File.ReadAllBytes(key));
        Assert.True(OwnerOnly(key));
        FederationCertificates.LoadAuthority(ca, null).Dispose();
        Assert.Equal(["ca.crt", "ca.key"], Entries(ca));

        // issuing again over a bundle whose NAME.crt cannot be replaced leaves its NAME.pfx as it was
        string bundle = Issue(ca, "node-a"), pfx = Path.Combine(bundle, "node-a.pfx"), nodeCrt = Path.Combine(bundle, "node-a.crt");
        byte[] oldPfx = File.ReadAllBytes(pfx);
        File.Delete(nodeCrt);
        Directory.CreateDirectory(nodeCrt);
        (code, error, _) = Fedavg("certs", "issue", "node-a", "--ca", ca, "--out", bundle, "--password-file", passwordFile);
        AssertRefused(code, error, $"--out {bundle}: cannot write node-a.pfx, node-a.crt, ca.crt ({nodeCrt} is a directory)");
        Assert.Equal(oldPfx, File.ReadAllBytes(pfx));
        Assert.True(OwnerOnly(pfx));
        Assert.Equal(["ca.crt", "node-a.crt", "node-a.pfx"], Entries(bundle));
    }

    [Fact]
    public void Days_out_of_range_are_usage_errors_that_make_nothing()
    {
        var (ca, _) = MakeCa("alpha");
        string x = Path.Combine(root, "x"), y = Path.Combine(root, "y");
        foreach (var days in new[] { "0", "36501", "99999999", "2147483647" })
        {
            var (code, error, _) = Fedavg("certs", "init", "--out", x, "--days", days);
            AssertRefused(code, error, $"--days {days}: a CA ");
            Assert.False(Directory.Exists(x), $"--days {days} made {x}");
            (code, error, _) = Fedavg("certs", "issue", "y", "--ca", ca, "--out", y, "--days", days);
            AssertRefused(code, error, $"--days {days}: a certificate ");
            Assert.False(Directory.Exists(y), $"--days {days} made {y}");
        }
        // the largest allowed works (a certificate is still cut at the CA's own expiry)
        var (c, e, _) = Fedavg("certs", "issue", "y", "--ca", ca, "--out", y, "--days", "36500");
        Assert.True(c == 0, e);
    }

    [Fact]
    public async Task An_empty_password_file_or_variable_is_refused_not_taken_for_no_password()
    {
        var (ca, _) = MakeCa("alpha");
        string pfx = Path.Combine(Issue(ca, "node-a"), "node-a.pfx"), caCrt = Path.Combine(root, "node-a", "ca.crt");
        string empty = Path.Combine(root, "empty.txt"), blank = Path.Combine(root, "blank.txt");
        File.WriteAllText(empty, "");
        File.WriteAllText(blank, "\n");
        string x = Path.Combine(root, "x"), y = Path.Combine(root, "y");
        foreach (var (file, why) in new[] { (empty, "the file is empty"), (blank, "its first line is empty") })
        {
            var (code, error, _) = Fedavg("certs", "init", "--out", x, "--ca-password-file", file);
            AssertRefused(code, error, $"--ca-password-file {file}: {why}");
            Assert.False(Directory.Exists(x));
            (code, error, _) = Fedavg("certs", "issue", "y", "--ca", ca, "--out", y, "--password-file", file);
            AssertRefused(code, error, $"--password-file {file}: {why}");
            Assert.False(Directory.Exists(y));
            // `fedavg node` and `fedavg server` read theirs the same way
            (code, error, _) = Fedavg("node", "--join", "127.0.0.1:4053", "--clients", "0-1", "--join-timeout", "1s",
                "--tls-cert", pfx, "--tls-ca", caCrt, "--tls-password-file", file);
            AssertRefused(code, error, $"--tls-password-file {file}: {why}");
        }
        // a variable set but empty, in a process of its own (this one's environment is shared)
        var init = Launch("init", new Dictionary<string, string> { [TransportSecurity.CaPasswordVariable] = "" }, "certs", "init", "--out", x);
        Assert.Equal(ExitCodes.UsageError, await init.WaitForExit(Start));
        Assert.Contains($"${TransportSecurity.CaPasswordVariable} is set but empty", init.Output);
        Assert.False(Directory.Exists(x));
    }

    [Fact]
    public void An_empty_federation_name_and_a_node_named_like_the_ca_certificate_are_refused()
    {
        foreach (var name in new[] { "", "  " })
        {
            string x = Path.Combine(root, "x");
            var (code, error, _) = Fedavg("certs", "init", "--out", x, "--name", name);
            AssertRefused(code, error, $"--name '{name}': the federation needs a name");
            Assert.False(Directory.Exists(x));
        }
        // NAME.crt would be ca.crt: in the CA directory, the node's certificate would replace the CA's own
        var (ca, _) = MakeCa("alpha");
        byte[] caCrt = File.ReadAllBytes(Path.Combine(ca, "ca.crt"));
        foreach (var name in new[] { "ca", "CA" })
        {
            var (code, error, _) = Fedavg("certs", "issue", name, "--ca", ca, "--out", ca);
            AssertRefused(code, error, $"certificate name '{name}': {name}.crt is the name of the CA's certificate");
        }
        Assert.Equal(caCrt, File.ReadAllBytes(Path.Combine(ca, "ca.crt")));
        Assert.Equal(["ca.crt", "ca.key"], Entries(ca));
        using var cert = X509CertificateLoader.LoadCertificateFromFile(Path.Combine(ca, "ca.crt"));
        Assert.Contains("CN=alpha CA", cert.Subject);
    }
}
