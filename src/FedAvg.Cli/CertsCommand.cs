using System.CommandLine;
using FedAvg.Actors.Hosting;
using FedAvg.Core;

namespace FedAvg.Cli;

/// <summary>`fedavg certs init` (the federation's CA) and `fedavg certs issue` (a node's certificate, signed by it).</summary>
public static class CertsCommand
{
    public static Command Create()
    {
        var command = new Command("certs", "Make the federation's certificate authority and its nodes' certificates for mutual TLS (docs/security.md).");
        command.Subcommands.Add(Init());
        command.Subcommands.Add(Issue());
        command.Subcommands.Add(Revoke());
        return command;
    }

    static Option<string?> CaPasswordFile() => new("--ca-password-file")
    {
        Description = $"A file whose first line is the CA key's password (default: ${TransportSecurity.CaPasswordVariable}; none: the key is not encrypted).",
    };

    static Command Init()
    {
        var output = new Option<string>("--out") { Description = "The CA directory to create (ca.crt, ca.key).", Required = true };
        var name = new Option<string>("--name") { Description = "The federation's name, in the CA's subject.", DefaultValueFactory = _ => "fedavg" };
        var days = new Option<int>("--days") { Description = "Validity of the CA in days.", DefaultValueFactory = _ => 3650 };
        var force = new Option<bool>("--force") { Description = "Replace an existing CA in --out (certificates it signed stop working)." };
        var passwordFile = CaPasswordFile();
        var command = new Command("init", "Make the federation's CA: DIR/ca.crt (give a copy to every node) and DIR/ca.key (keep it on one machine, owner-only).");
        foreach (var o in new Option[] { output, name, days, force, passwordFile }) command.Options.Add(o);
        command.SetAction(parse =>
        {
            string dir = parse.GetValue(output)!;
            var (password, _) = TransportSecurity.Password(parse.GetValue(passwordFile) ?? "", "--ca-password-file", TransportSecurity.CaPasswordVariable);
            using var ca = FederationCertificates.Init(dir, parse.GetValue(name)!, password, parse.GetValue(days), parse.GetValue(force));
            Console.WriteLine($"certs: CA '{ca.Subject}' valid until {ca.NotAfter:yyyy-MM-dd}, thumbprint {ca.Thumbprint}");
            Console.WriteLine($"certs: wrote {Path.Combine(dir, FederationCertificates.CaCertificateFile)} and {Path.Combine(dir, FederationCertificates.CaKeyFile)} (owner-only" +
                              (password is null ? ", not encrypted: set $" + TransportSecurity.CaPasswordVariable + " to encrypt it" : ", encrypted") + ")");
            return ExitCodes.Success;
        });
        return command;
    }

    static Command Revoke()
    {
        var cert = new Argument<string>("CERT") { Description = "The node's NAME.crt (from `fedavg certs issue`)." };
        var ca = new Option<string>("--ca") { Description = "The CA directory of `fedavg certs init`; its revoked.txt gets the serial.", Required = true };
        var command = new Command("revoke", "Revoke a node's certificate: its serial goes into CA-DIR/revoked.txt, which every process reads beside its ca.crt at start and again whenever it changes.");
        command.Arguments.Add(cert);
        command.Options.Add(ca);
        command.SetAction(parse =>
        {
            var (serial, subject, added) = FederationCertificates.Revoke(parse.GetValue(cert)!, parse.GetValue(ca)!);
            string file = Path.Combine(parse.GetValue(ca)!, FederationCertificates.RevokedFile);
            Console.WriteLine(added ? $"certs: revoked {subject} (serial {serial}) in {file}" : $"certs: {subject} (serial {serial}) is revoked already in {file}");
            // a running server reads the file again when it changes and removes the node (README, docs/security.md)
            Console.WriteLine($"certs: copy {file} next to the ca.crt of the server (and of the nodes); a running server removes the node at its next request or push");
            return ExitCodes.Success;
        });
        return command;
    }

    static Command Issue()
    {
        var name = new Argument<string>("NAME") { Description = "The node's name (the certificate's CN; files NAME.pfx and NAME.crt)." };
        var ca = new Option<string>("--ca") { Description = "The CA directory of `fedavg certs init`.", Required = true };
        var output = new Option<string>("--out") { Description = "Where to write the node's bundle: NAME.pfx (certificate and key, owner-only), NAME.crt, ca.crt.", Required = true };
        var role = new Option<string>("--role") { Description = "server (for `fedavg server`) or client (for `fedavg node`).", DefaultValueFactory = _ => FederationCertificates.RoleClient };
        var hosts = new Option<string[]>("--host") { Description = "A host name or address of the node, added to the certificate (repeatable; informative: peers are verified by CA).", AllowMultipleArgumentsPerToken = false };
        var days = new Option<int>("--days") { Description = "Validity in days (at most the CA's).", DefaultValueFactory = _ => 365 };
        var passwordFile = new Option<string?>("--password-file") { Description = $"A file whose first line is the password for NAME.pfx (default: ${TransportSecurity.PasswordVariable}; none: no password)." };
        var caPasswordFile = CaPasswordFile();
        var command = new Command("issue", "Issue a node's certificate, signed by the federation's CA.");
        command.Arguments.Add(name);
        foreach (var o in new Option[] { ca, output, role, hosts, days, passwordFile, caPasswordFile }) command.Options.Add(o);
        command.SetAction(parse =>
        {
            int d = parse.GetValue(days);
            FederationCertificates.CheckDays(d, "a certificate");
            var (caPassword, _) = TransportSecurity.Password(parse.GetValue(caPasswordFile) ?? "", "--ca-password-file", TransportSecurity.CaPasswordVariable);
            var (password, _) = TransportSecurity.Password(parse.GetValue(passwordFile) ?? "", "--password-file", TransportSecurity.PasswordVariable);
            var now = DateTimeOffset.UtcNow;
            string pfx = FederationCertificates.Issue(parse.GetValue(name)!, parse.GetValue(ca)!, parse.GetValue(output)!, parse.GetValue(role)!,
                caPassword, password, parse.GetValue(hosts) ?? [], now.AddMinutes(-5), now.AddDays(d));
            Console.WriteLine($"certs: wrote {pfx} (owner-only{(password is null ? ", no password" : ", password-protected")}), " +
                              $"{Path.ChangeExtension(pfx, ".crt")} and {Path.Combine(parse.GetValue(output)!, FederationCertificates.CaCertificateFile)}");
            string start = parse.GetValue(role) == FederationCertificates.RoleServer ? "`fedavg server`" : $"`fedavg node` (its id: {parse.GetValue(name)})";
            Console.WriteLine($"certs: copy that directory to its machine and start {start} there with --tls-cert {pfx} " +
                              $"--tls-ca {Path.Combine(parse.GetValue(output)!, FederationCertificates.CaCertificateFile)}");
            return ExitCodes.Success;
        });
        return command;
    }
}
