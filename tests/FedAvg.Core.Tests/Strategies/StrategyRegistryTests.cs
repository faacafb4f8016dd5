using FedAvg.Core.Strategies;
using static FedAvg.Core.Tests.Strategies.Kit;

namespace FedAvg.Core.Tests.Strategies;

public class StrategyRegistryTests
{
    static IStrategy Create(string name, params (string Key, string Value)[] p) =>
        StrategyRegistry.Create(name, p.ToDictionary(x => x.Key, x => x.Value), Options());

    [Fact]
    public void Every_strategy_is_registered_under_its_name_and_builds_with_its_defaults()
    {
        Assert.Equal(["fedavg", "fedprox", "fedavgm", "fedadam", "fedyogi", "fedadagrad", "median", "trimmed-mean", "krum", "multi-krum", "bulyan"],
            StrategyRegistry.Names);
        foreach (var d in StrategyRegistry.All)
        {
            var required = d.Parameters.Where(p => p.Default is null).ToDictionary(p => p.Name, _ => "1");
            var s = StrategyRegistry.Create(d.Name, required, Options());
            Assert.Equal(d.Name, s.Name);
            Assert.StartsWith("flwr/server/strategy/", d.Flower);
            Assert.All(d.Parameters, p => Assert.False(string.IsNullOrWhiteSpace(p.Help)));
        }
    }

    [Fact]
    public void Parameters_are_parsed_into_the_strategy_and_a_name_key_is_ignored()
    {
        var adam = Assert.IsType<FedAdamStrategy>(Create("fedadam", ("name", "fedadam"), ("eta", "0.05"), ("beta2", "0.999"), ("bias-correction", "off")));
        Assert.Equal((0.05, 0.1, 0.9, 0.999, 1e-9, false), (adam.Eta, adam.EtaL, adam.Beta1, adam.Beta2, adam.Tau, adam.BiasCorrection));
        Assert.Equal(2, Assert.IsType<KrumStrategy>(Create("krum", ("f", "2"))).F);
        Assert.Equal((1, 4), Assert.IsType<MultiKrumStrategy>(Create("multi-krum", ("f", "1"), ("m", "4"))) is var mk ? (mk.F, mk.M) : default);
        Assert.Equal(0.1, Assert.IsType<TrimmedMeanStrategy>(Create("trimmed-mean", ("beta", "1e-1"))).Beta);
        Assert.Equal((1.0, 0.9), Assert.IsType<FedAvgMStrategy>(Create("fedavgm", ("server-momentum", "0.9"))) is var m ? (m.ServerLearningRate, m.ServerMomentum) : default);
    }

    [Fact]
    public void An_unknown_name_lists_the_strategies_and_an_unknown_parameter_lists_the_strategys_parameters()
    {
        var name = Assert.Throws<UsageException>(() => Create("fedsgd")).Message;
        Assert.Equal("fedavg.strategy.name: unknown strategy 'fedsgd'; the strategies are fedavg, fedprox, fedavgm, fedadam, fedyogi, fedadagrad, median, trimmed-mean, krum, multi-krum, bulyan.", name);
        var param = Assert.Throws<UsageException>(() => Create("fedavgm", ("momentum", "0.9"))).Message;
        Assert.Equal("fedavg.strategy.momentum: strategy 'fedavgm' has no such parameter; its parameters: server-lr, server-momentum.", param);
        Assert.Contains("takes no parameters", Assert.Throws<UsageException>(() => Create("median", ("beta", "0.1"))).Message);
    }

    [Fact]
    public void A_value_that_is_not_a_number_or_out_of_range_is_refused_naming_the_key()
    {
        Assert.Equal("fedavg.strategy.eta must be a number, got 'fast'.", Assert.Throws<UsageException>(() => Create("fedadam", ("eta", "fast"))).Message);
        Assert.Equal("fedavg.strategy.beta must be in [0, 0.5): a cut of half from each end leaves nothing, got 0.5.",
            Assert.Throws<UsageException>(() => Create("trimmed-mean", ("beta", "0.5"))).Message);
        Assert.Equal("fedavg.strategy.bias-correction must be on or off, got 'maybe'.",
            Assert.Throws<UsageException>(() => Create("fedadam", ("bias-correction", "maybe"))).Message);
    }
}
