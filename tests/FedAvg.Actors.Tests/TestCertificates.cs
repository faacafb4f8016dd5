using System.Security.Cryptography.X509Certificates;
using FedAvg.Actors.Hosting;

namespace FedAvg.Actors.Tests;

/// <summary>A federation CA and another CA in a temporary directory, and certificates issued by them as `fedavg certs` does (no passwords).</summary>
sealed class TestCertificates : IDisposable
{
    readonly string root = Directory.CreateTempSubdirectory("fedavg-certs-").FullName;
    public string Ca { get; }
    public string OtherCa { get; }

    public TestCertificates()
    {
        (Ca, OtherCa) = (Path.Combine(root, "ca"), Path.Combine(root, "other-ca"));
        FederationCertificates.Init(Ca, "alpha", null, 2).Dispose();
        FederationCertificates.Init(OtherCa, "beta", null, 2).Dispose();
    }

    /// <summary>NAME.pfx of a bundle issued by the federation's CA, or by the other one.</summary>
    public string Issue(string name, string role = FederationCertificates.RoleClient, bool otherCa = false)
    {
        var now = DateTimeOffset.UtcNow;
        return FederationCertificates.Issue(name, otherCa ? OtherCa : Ca, Path.Combine(root, (otherCa ? "other-" : "") + name), role, null, null, [],
            now.AddMinutes(-5), now.AddDays(1));
    }

    /// <summary>What `fedavg server` or `fedavg node` loads from a bundle (--tls-cert NAME.pfx --tls-ca ca.crt).</summary>
    public static TransportSecurity Load(string pfx, string role) =>
        TransportSecurity.Load(new TlsSettings(pfx, Path.Combine(Path.GetDirectoryName(pfx)!, FederationCertificates.CaCertificateFile), "", false),
            new Endpoint("127.0.0.1", null, 0), role)!;

    /// <summary>The public certificate (NAME.crt) of the bundle whose NAME.pfx is <paramref name="pfx"/>.</summary>
    public static X509Certificate2 Crt(string pfx) => X509CertificateLoader.LoadCertificateFromFile(Path.ChangeExtension(pfx, ".crt"));

    /// <summary>A certificate with its key, as a peer holds it.</summary>
    public static X509Certificate2 Pfx(string path) => X509CertificateLoader.LoadPkcs12FromFile(path, null, X509KeyStorageFlags.EphemeralKeySet);

    public void Dispose() => Directory.Delete(root, recursive: true);
}
