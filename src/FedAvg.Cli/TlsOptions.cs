using System.CommandLine;
using FedAvg.Actors.Hosting;

namespace FedAvg.Cli;

/// <summary>The transport-security flags of `fedavg server` and `fedavg node`, as overrides of `fedavg.cluster.tls`.</summary>
public sealed class TlsOptions
{
    public Option<string?> Certificate { get; } = new("--tls-cert")
    {
        Description = "This process's certificate and key: the NAME.pfx of `fedavg certs issue` (fedavg.cluster.tls.certificate). Its password comes from $" +
                      TransportSecurity.PasswordVariable + " or --tls-password-file.",
    };
    public Option<string?> Ca { get; } = new("--tls-ca") { Description = "The federation's CA certificate (ca.crt), or a directory holding it; peers must be signed by it (fedavg.cluster.tls.ca)." };
    public Option<string?> PasswordFile { get; } = new("--tls-password-file") { Description = "A file whose first line is the --tls-cert password (fedavg.cluster.tls.password-file)." };
    public Option<bool> Insecure { get; } = new("--insecure") { Description = "Plaintext TCP on a non-loopback address: anyone who can reach the port can join (fedavg.cluster.tls.insecure)." };

    public Option[] All => [Certificate, Ca, PasswordFile, Insecure];

    /// <summary>HOCON lines for the flags given (paths as quoted strings).</summary>
    public IEnumerable<string> Overrides(ParseResult parse)
    {
        if (parse.GetValue(Certificate) is { } c) yield return $"fedavg.cluster.tls.certificate = {Quote(c)}";
        if (parse.GetValue(Ca) is { } a) yield return $"fedavg.cluster.tls.ca = {Quote(a)}";
        if (parse.GetValue(PasswordFile) is { } p) yield return $"fedavg.cluster.tls.password-file = {Quote(p)}";
        if (parse.GetValue(Insecure)) yield return "fedavg.cluster.tls.insecure = on";
    }

    /// <summary>The `fedavg.cluster.tls` keys given as flags, and the flag of each: what an error about them must name.</summary>
    public IReadOnlyDictionary<string, string> Given(ParseResult parse)
    {
        var given = new Dictionary<string, string>();
        if (parse.GetValue(Certificate) is not null) given["certificate"] = Certificate.Name;
        if (parse.GetValue(Ca) is not null) given["ca"] = Ca.Name;
        if (parse.GetValue(PasswordFile) is not null) given["password-file"] = PasswordFile.Name;
        if (parse.GetValue(Insecure)) given["insecure"] = Insecure.Name;
        return given;
    }

    static string Quote(string s) => "\"" + s.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";

    /// <summary>
    /// Loads and checks the certificates (or allows plaintext) and says at start what the transport is; errors name the
    /// flag for a setting given as one (<paramref name="given"/>, from <see cref="Given"/>), else its HOCON key.
    /// </summary>
    public static TransportSecurity? Load(Akka.Configuration.Config layered, Endpoint endpoint, string role, string who, IReadOnlyDictionary<string, string> given)
    {
        var settings = TlsSettings.FromConfig(layered, given);
        var tls = TransportSecurity.Load(settings, endpoint, role);
        if (tls is not null)
        {
            Console.WriteLine($"{who}: {tls.Describe()}");
        }
        else if (!TransportSecurity.IsLoopback(endpoint.Bind))
        {
            // a server also listens on its weight channel, which is as open as Akka's port without TLS
            string ports = role == ClusterHosting.ServerRole
                ? $"{endpoint.Bind}:{endpoint.Port} and the weight channel's {(endpoint.WeightChannelPort == 0 ? "port" : $":{endpoint.WeightChannelPort}")}"
                : $"{endpoint.Bind}:{endpoint.Port}";
            Console.Error.WriteLine($"""
                {who}: WARNING: INSECURE: plaintext TCP on {ports} ({settings.Names.Insecure}). Anyone who can reach these ports can
                {who}: WARNING: INSECURE: join the federation, read the weights and send this process any message. Use --tls-cert and --tls-ca.
                """.TrimEnd());
        }
        return tls;
    }
}
