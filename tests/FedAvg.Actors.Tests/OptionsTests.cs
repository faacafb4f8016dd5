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
}
