using FedAvg.Actors.Hosting;
using FedAvg.Core;
using FedAvg.Tests.Shared;

namespace FedAvg.Actors.Tests;

public class OptionsTests
{
    static SimulationOptions With(string overrides) =>
        SimulationOptions.FromConfig(HoconFiles.Load("simulation.conf", overrides: overrides));

    [Fact]
    public void The_shipped_defaults_are_seed_001s_setting()
    {
        var o = With("");
        Assert.Equal(("mnist", "seed001-2nn", 100, "iid-balanced:450"), (o.Dataset, o.Model, o.Clients, o.Partition));
        Assert.Equal((10, 32, 0.01, 0.9, 11, 1.0), (o.LocalEpochs, o.Batch, o.LearningRate, o.Momentum, o.Rounds, o.Fraction));
        Assert.Equal(Environment.ProcessorCount, o.Trainers);
    }

    [Theory]
    [InlineData("fedavg.fraction = 0", "fraction")]
    [InlineData("fedavg.fraction = 1.5", "fraction")]
    [InlineData("fedavg.min-clients = 101", "min-clients")]
    [InlineData("fedavg.round-timeout = -5s", "round-timeout")]
    [InlineData("fedavg.lr = 0", "lr")]
    [InlineData("fedavg.batch = 0", "batch")]
    [InlineData("fedavg.clients = many", "fedavg.clients")]
    [InlineData("fedavg.model = resnet", "seed001-2nn")]
    [InlineData("fedavg.partition = \"dirichlet:-1\"", "alpha")]
    [InlineData("fedavg.dataset = cifar", "fashion-mnist")]
    [InlineData("fedavg.target-accuracy = 2", "target-accuracy")]
    public void Impossible_values_are_refused_naming_the_option(string hocon, string named)
    {
        var e = Assert.Throws<UsageException>(() => With(hocon));
        Assert.Contains(named, e.Message);
    }

    [Fact]
    public void An_invalid_or_missing_hocon_file_is_named()
    {
        string dir = TestData.TempDir();
        string broken = Path.Combine(dir, "broken.conf");
        File.WriteAllText(broken, "fedavg {\n  clients = 10\n  model = { oops\n");
        var e = Assert.Throws<UsageException>(() => HoconFiles.Load("simulation.conf", broken));
        Assert.Contains(broken, e.Message);
        Assert.Contains("invalid HOCON at line 3", e.Message);
        string missing = Path.Combine(dir, "missing.conf");
        Assert.Contains(missing, Assert.Throws<UsageException>(() => HoconFiles.Load("simulation.conf", missing)).Message);
    }

    [Theory]
    [InlineData("fedavg { lr = }", "no value")]
    [InlineData("fedavg { clients = 10", "never closed")]
    [InlineData("fedavg.partition = \"iid", "unterminated")]
    [InlineData("fedavg { rounds = [1, 2 }", "closes nothing")]
    [InlineData("}", "closes nothing")]
    public void Structural_hocon_errors_are_caught_even_though_akkas_parser_accepts_them(string text, string reason)
    {
        var e = Assert.Throws<UsageException>(() => HoconFiles.Parse(text, "test.conf"));
        Assert.Contains(reason, e.Message);
        Assert.StartsWith("test.conf: invalid HOCON at line 1", e.Message);
    }

    [Fact]
    public void A_misspelt_setting_is_refused_with_the_valid_names()
    {
        var e = Assert.Throws<UsageException>(() => With("fedavg.epochs = 5"));
        Assert.Contains("fedavg.epochs is not a setting", e.Message);
        Assert.Contains("local-epochs", e.Message);
    }

    [Fact]
    public void The_shipped_configuration_passes_the_structural_check()
    {
        foreach (var file in Directory.GetFiles(Path.Combine(TestData.RepoRoot, "hocon"), "*.conf"))
            HoconFiles.Parse(File.ReadAllText(file), file);
    }

    [Fact]
    public void A_user_file_overrides_the_defaults_and_flags_override_the_file()
    {
        string file = Path.Combine(TestData.TempDir(), "mine.conf");
        File.WriteAllText(file, "fedavg { clients = 10, rounds = 3 }");
        var o = SimulationOptions.FromConfig(HoconFiles.Load("simulation.conf", file, "fedavg.rounds = 7"));
        Assert.Equal((10, 7), (o.Clients, o.Rounds));
    }

    [Fact]
    public void Options_survive_a_round_trip_through_the_resolved_hocon()
    {
        var o = With("fedavg { fraction = 0.1, lr = 0.215, partition = \"dirichlet:0.5\", round-timeout = 90s, trainers = 3 }");
        var back = SimulationOptions.FromConfig(HoconFiles.Parse(o.ToHocon(), "resolved"));
        Assert.Equal(o, back);
    }

    /// <summary>
    /// TLS settings reach <see cref="TransportSecurity.Load"/> from HOCON (`fedavg.cluster.tls` in cluster.conf or a
    /// --config file) or from flags (written as HOCON overrides, listed in <c>given</c>); each error names the one the
    /// user wrote. Real files: a CA and a certificate from <see cref="FederationCertificates"/>.
    /// </summary>
    [Fact]
    public void A_bad_tls_setting_is_named_as_the_user_gave_it_by_its_hocon_key_or_by_its_flag()
    {
        string root = TestData.TempDir(), ca = Path.Combine(root, "ca"), other = Path.Combine(root, "other-ca");
        FederationCertificates.Init(ca, "alpha", null, 30).Dispose();
        FederationCertificates.Init(other, "mallory", null, 30).Dispose();
        var now = DateTimeOffset.UtcNow;
        string pfx = FederationCertificates.Issue("node-a", ca, Path.Combine(root, "node-a"), "client", null, "secret", [], now, now.AddDays(1));
        string stranger = FederationCertificates.Issue("evil", other, Path.Combine(root, "evil"), "client", null, "secret", [], now, now.AddDays(1));
        string caCrt = Path.Combine(ca, "ca.crt"), nodeCrt = Path.Combine(root, "node-a", "node-a.crt"), missing = Path.Combine(root, "missing.pfx");
        string password = Path.Combine(root, "password.txt"), wrong = Path.Combine(root, "wrong.txt"), empty = Directory.CreateDirectory(Path.Combine(root, "empty")).FullName;
        File.WriteAllText(password, "secret\n");
        File.WriteAllText(wrong, "not it\n");
        var flag = new Dictionary<string, string> { ["certificate"] = "--tls-cert", ["ca"] = "--tls-ca", ["password-file"] = "--tls-password-file", ["insecure"] = "--insecure" };
        const string Key = "fedavg.cluster.tls";

        (string Hocon, string[] Flags, string Role, string Expected)[] cases =
        [
            ($"certificate = \"{missing}\", ca = \"{caCrt}\"", [], "client", $"{Key}.certificate = \"{missing}\": file not found"),
            ($"certificate = \"{missing}\", ca = \"{caCrt}\"", ["certificate", "ca"], "client", $"--tls-cert {missing}: file not found"),
            ($"certificate = \"{pfx}\", ca = \"{caCrt}\", password-file = \"{wrong}\"", [], "client",
                $"{Key}.certificate = \"{pfx}\": wrong password ({Key}.password-file = \"{wrong}\")"),
            ($"certificate = \"{pfx}\", ca = \"{caCrt}\", password-file = \"{wrong}\"", ["password-file"], "client",
                $"{Key}.certificate = \"{pfx}\": wrong password (--tls-password-file {wrong})"),
            ($"certificate = \"{pfx}\", ca = \"{caCrt}\", password-file = \"{missing}\"", [], "client", $"{Key}.password-file = \"{missing}\": file not found"),
            ($"ca = \"{caCrt}\"", [], "client", $"{Key}.ca needs {Key}.certificate as well"),
            ($"ca = \"{caCrt}\"", ["ca"], "client", "--tls-ca needs --tls-cert as well"),
            ($"certificate = \"{pfx}\"", [], "client", $"{Key}.certificate needs {Key}.ca as well"),
            ($"certificate = \"{pfx}\", ca = \"{caCrt}\", insecure = on", ["certificate"], "client", $"{Key}.insecure turns TLS off; do not give --tls-cert or {Key}.ca with it"),
            ($"certificate = \"{pfx}\", ca = \"{caCrt}\", insecure = on", ["insecure"], "client", $"--insecure turns TLS off; do not give {Key}.certificate or {Key}.ca with it"),
            ("insecure = maybe", [], "client", $"{Key}.insecure: 'maybe' is not a valid value"),
            ("insecure = maybe", ["insecure"], "client", "--insecure: 'maybe' is not a valid value"),
            ($"certificate = \"{pfx}\", ca = \"{empty}\"", ["certificate"], "client", $"{Key}.ca = \"{empty}\" is a directory without ca.crt"),
            ($"certificate = \"{pfx}\", ca = \"{nodeCrt}\"", [], "client", $"{Key}.ca = \"{nodeCrt}\": 'CN=node-a, OU=client, O=fedavg federation' is not a CA certificate"),
            ($"certificate = \"{pfx}\", ca = \"{caCrt}\", password-file = \"{password}\"", [], "server", $"{Key}.certificate = \"{pfx}\": issued for role 'client'"),
            ($"certificate = \"{pfx}\", ca = \"{caCrt}\", password-file = \"{password}\"", ["certificate"], "server", $"--tls-cert {pfx}: issued for role 'client'"),
            ($"certificate = \"{stranger}\", ca = \"{caCrt}\", password-file = \"{password}\"", [], "client",
                $"{Key}.certificate = \"{stranger}\": the certificate 'CN=evil, OU=client, O=fedavg federation' (issuer 'CN=mallory CA, OU=ca, O=fedavg federation') " +
                $"is not signed by the federation's CA ({Key}.ca = \"{caCrt}\": CN=alpha CA"),
        ];
        foreach (var (hocon, flags, role, expected) in cases)
        {
            var config = HoconFiles.Load(["simulation.conf", "cluster.conf"], overrides: $"{Key} {{ {hocon} }}");
            var given = flags.ToDictionary(k => k, k => flag[k]);
            var e = Assert.Throws<UsageException>(() =>
                TransportSecurity.Load(TlsSettings.FromConfig(config, given), new Endpoint("127.0.0.1", null, 0), role == "server" ? ClusterHosting.ServerRole : ClusterHosting.ClientRole)?.Dispose());
            Assert.True(e.Message.Contains(expected), $"{hocon} (flags: {string.Join(", ", flags)}):\n  expected {expected}\n  got      {e.Message}");
            // a setting given one way is never named the other way
            foreach (var (key, name) in flag.Where(f => hocon.StartsWith($"{f.Key} = ") || hocon.Contains($", {f.Key} = ")))
                Assert.False(e.Message.Contains(flags.Contains(key) ? $"{Key}.{key}" : name + " "), $"{hocon} (flags: {string.Join(", ", flags)}) names {key} wrongly: {e.Message}");
        }

        // the same certificate, accepted either way
        var good = HoconFiles.Load(["simulation.conf", "cluster.conf"], overrides: $"{Key} {{ certificate = \"{pfx}\", ca = \"{ca}\", password-file = \"{password}\" }}");
        using var loaded = TransportSecurity.Load(TlsSettings.FromConfig(good), new Endpoint("127.0.0.1", null, 0), ClusterHosting.ClientRole);
        Assert.Equal("CN=node-a, OU=client, O=fedavg federation", loaded!.Certificate.Subject);
        Assert.Equal($"{Key}.ca", loaded.CaSetting); // what a refused handshake later tells the user to check
        var flagged = HoconFiles.Load(["simulation.conf", "cluster.conf"], overrides: $"{Key} {{ certificate = \"{pfx}\", ca = \"{caCrt}\", password-file = \"{password}\" }}");
        using var fromFlags = TransportSecurity.Load(TlsSettings.FromConfig(flagged, flag), new Endpoint("127.0.0.1", null, 0), ClusterHosting.ClientRole);
        Assert.Equal("--tls-ca", fromFlags!.CaSetting);
    }
}


/// <summary>The settings table: each setting declared once, everything else derived from it.</summary>
public class RunSettingsTests
{
    static SimulationOptions With(string overrides) =>
        SimulationOptions.FromConfig(HoconFiles.Load("simulation.conf", overrides: overrides));

    /// <summary>A value other than the default for every setting, with the awkward cases of each type.</summary>
    static readonly SimulationOptions Unusual = RunSettings.Defaults with
    {
        Dataset = "fashion-mnist", Model = "seed000-cnn", Clients = 7, Partition = "dirichlet:0.3", Standardize = true,
        Rounds = 3, Fraction = 0.1, MinClients = 2, LocalEpochs = 1, Batch = 5, LearningRate = 1e-5, Momentum = 0.1 + 0.2,
        WeightDecay = 5e-4, Seed = -42, Trainers = 3, ThreadsPerTrainer = 2, RoundTimeout = TimeSpan.FromMilliseconds(1501),
        RoundAttempts = 5, TargetAccuracy = 0.97, MaxUpdateNorm = 2.5, StrategyName = "fedavgm",
        StrategyParameters = new Dictionary<string, string> { ["server-lr"] = "0.5", ["server-momentum"] = "0.1" },
        Faults =
        [
            new(FedAvg.Actors.Faults.FaultBehaviour.Scale(0.1 + 0.2), Fraction: 0.2),
            new(FedAvg.Actors.Faults.FaultBehaviour.DelayBy(TimeSpan.FromMilliseconds(1501)), Clients: [3, 6], Probability: 0.25, FromRound: 2, ToRound: 3),
        ],
    };

    [Fact]
    public void The_defaults_are_seed_001s_setting_and_the_shipped_file_repeats_none_of_them()
    {
        var o = With("");
        Assert.Equal(RunSettings.Defaults, o);
        Assert.Equal(("mnist", "seed001-2nn", 100, "iid-balanced:450", false), (o.Dataset, o.Model, o.Clients, o.Partition, o.Standardize));
        Assert.Equal((11, 1.0, 1), (o.Rounds, o.Fraction, o.MinClients));
        Assert.Equal((10, 32, 0.01, 0.9, 0.0, 1), (o.LocalEpochs, o.Batch, o.LearningRate, o.Momentum, o.WeightDecay, o.Seed));
        Assert.Equal((FedAvg.Core.Training.TrainerPool.DefaultShape(Environment.ProcessorCount).Trainers, 1), (o.Trainers, o.ThreadsPerTrainer));
        Assert.Equal((TimeSpan.FromMinutes(10), 2, (double?)null), (o.RoundTimeout, o.RoundAttempts, o.TargetAccuracy));
        Assert.Equal("fedavg", o.StrategyName);
        Assert.Empty(o.StrategyParameters);
        Assert.Equal("auto", RunSettings.Trainers.DefaultHocon);
        Assert.Equal("off", RunSettings.TargetAccuracy.DefaultHocon);
        Assert.False(HoconFiles.Load("simulation.conf").HasPath(RunSettings.Section));
    }

    [Fact]
    public void Every_setting_round_trips_exactly_through_the_config_conf_it_writes()
    {
        foreach (var setting in RunSettings.All) // the sample covers every declared setting
            Assert.NotEqual(setting.Write(RunSettings.Defaults), setting.Write(Unusual));
        string hocon = Unusual.ToHocon();
        var back = SimulationOptions.FromConfig(HoconFiles.Parse(hocon, "config.conf"));
        Assert.Equal(Unusual, back);
        Assert.Equal(hocon, back.ToHocon());
        Assert.Equal(0.1 + 0.2, back.Momentum); // "R": not 0.3
        Assert.Equal(TimeSpan.FromMilliseconds(1501), back.RoundTimeout);
        Assert.Equal("0.1", back.StrategyParameters["server-momentum"]);
        Assert.Equal(0.1 + 0.2, back.Faults[0].Behaviour.Value);
        Assert.Equal(TimeSpan.FromMilliseconds(1501), back.Faults[1].Behaviour.Delay);
        Assert.NotEqual(Unusual, Unusual with { Faults = [Unusual.Faults[0]] });
        Assert.NotEqual(Unusual, Unusual with { StrategyParameters = new Dictionary<string, string> { ["server-lr"] = "0.25" } });
        Assert.Equal(RunSettings.Defaults, SimulationOptions.FromConfig(HoconFiles.Parse(RunSettings.Defaults.ToHocon(), "defaults")));
        Assert.Equal(TimeSpan.FromMilliseconds(2), With("fedavg.round-timeout = 1.5ms").RoundTimeout); // to the millisecond
    }

    [Theory]
    [InlineData(0, "0ms")]
    [InlineData(1_501, "1501ms")]
    [InlineData(30_000, "30s")]
    [InlineData(90_000, "90s")]
    [InlineData(600_000, "10m")]
    [InlineData(7_200_000, "2h")]
    [InlineData(172_800_000, "2d")]
    public void A_duration_is_written_in_the_largest_whole_unit_and_reads_back_to_the_same_millisecond(long ms, string text)
    {
        var t = TimeSpan.FromMilliseconds(ms);
        Assert.Equal(text, HoconText.Duration(t));
        Assert.Equal(t, Akka.Configuration.ConfigurationFactory.ParseString($"d = {HoconText.Duration(t)}").GetTimeSpan("d", null, allowInfinite: false));
    }

    [Theory]
    [InlineData("fedavg.target-accuracy = off")]
    [InlineData("fedavg.target-accuracy = 0")] // as config.conf of earlier versions says
    [InlineData("")]
    public void No_target_accuracy_is_null_and_written_off(string hocon)
    {
        var o = With(hocon);
        Assert.Null(o.TargetAccuracy);
        Assert.Contains("target-accuracy = off", o.ToHocon());
    }

    [Fact]
    public void The_norm_rule_is_off_by_default_and_takes_a_factor_from_hocon()
    {
        Assert.Null(With("").MaxUpdateNorm);
        Assert.Null(With("fedavg.server.max-update-norm = off").MaxUpdateNorm);
        var o = With("fedavg.server { max-update-norm = 3 }");
        Assert.Equal(3.0, o.MaxUpdateNorm);
        Assert.Contains("server {\n    max-update-norm = 3\n  }", o.ToHocon());
        var e = Assert.Throws<UsageException>(() => With("fedavg.server.max-update-norm = 0.5"));
        Assert.Equal("fedavg.server.max-update-norm (--max-update-norm) must be more than 1 (the median update itself is at 1×), or off; got 0.5.", e.Message);
    }

    [Fact]
    public void The_strategy_section_gives_a_name_and_keeps_every_other_key_as_text()
    {
        var o = With("fedavg.strategy { name = fedprox, mu = 0.01 }");
        Assert.Equal("fedprox", o.StrategyName);
        Assert.Equal(new Dictionary<string, string> { ["mu"] = "0.01" }, o.StrategyParameters);
        Assert.Equal(0.01, o.CreateStrategy().ConfigureRound(1, ["a"]).Config[FedAvg.Core.Strategies.RoundConfig.ProximalMu]);
        // the registry checks every key: a nested or unknown one is named with its path, and fedavg takes none
        Assert.Contains("fedavg.strategy.server.lr", Assert.Throws<UsageException>(() => With("fedavg.strategy { name = fedprox, mu = 0.01, server { lr = 1 } }")).Message);
        Assert.Contains("fedavg.strategy.mu", Assert.Throws<UsageException>(() => With("fedavg.strategy { mu = 0.01 }")).Message);
        Assert.Contains("krum", Assert.Throws<UsageException>(() => With("fedavg.strategy.name = kurm")).Message);
        Assert.Contains("fedavg.strategy.name", Assert.Throws<UsageException>(() => With("fedavg.strategy.name = \"\"")).Message);
        Assert.Contains("fedavg.strategy", Assert.Throws<UsageException>(() => With("fedavg.strategy = fedprox")).Message);
    }

    [Fact]
    public void An_unknown_key_lists_every_valid_one()
    {
        var e = Assert.Throws<UsageException>(() => With("fedavg.epochs = 5"));
        Assert.Contains("fedavg.epochs is not a setting", e.Message);
        foreach (var key in RunSettings.TopLevelKeys) Assert.Contains(key, e.Message);
        Assert.Contains("strategy", RunSettings.TopLevelKeys);
    }

    [Theory]
    [InlineData("dataset", "cifar")]
    [InlineData("model", "resnet")]
    [InlineData("clients", "0")]
    [InlineData("partition", "\"shards:0\"")]
    [InlineData("standardize", "maybe")]
    [InlineData("rounds", "1.5")]
    [InlineData("fraction", "2")]
    [InlineData("min-clients", "0")]
    [InlineData("local-epochs", "0")]
    [InlineData("batch", "-1")]
    [InlineData("lr", "NaN")]
    [InlineData("momentum", "1")]
    [InlineData("weight-decay", "-1")]
    [InlineData("seed", "x")]
    [InlineData("trainers", "0")]
    [InlineData("threads-per-trainer", "none")]
    [InlineData("round-timeout", "0s")]
    [InlineData("round-attempts", "0")]
    [InlineData("target-accuracy", "1.5")]
    [InlineData("clients", "[1, 2]")]
    [InlineData("server.max-update-norm", "1")]
    [InlineData("server.max-update-norm", "-3")]
    [InlineData("server.max-update-norm", "huge")]
    public void A_bad_value_is_refused_naming_its_key(string key, string value)
    {
        var e = Assert.Throws<UsageException>(() => With($"fedavg.{key} = {value}"));
        // the domain's own wording names the allowed values; ours names the key
        if (key is not ("dataset" or "model" or "partition")) Assert.Contains($"fedavg.{key}", e.Message);
    }

    [Fact]
    public void A_fedavg_that_is_not_a_section_is_refused()
    {
        Assert.Contains("section", Assert.Throws<UsageException>(() => With("fedavg = 5")).Message);
    }
}
