using System.Reflection;

namespace FedAvg.Core.Tests;

public class BuildTests
{
    static string LoadedLibTorchSharp() =>
        Directory.GetFiles(AppContext.BaseDirectory, "libLibTorchSharp.so", SearchOption.AllDirectories).First();

    [Fact]
    public void Core_does_not_reference_akka()
    {
        var core = typeof(FedAvg.Core.Strategies.FedAvgStrategy).Assembly;
        var references = core.GetReferencedAssemblies().Select(a => a.Name!).ToList();
        Assert.Contains(references, r => r.StartsWith("TorchSharp"));
        Assert.DoesNotContain(references, r => r.StartsWith("Akka", StringComparison.OrdinalIgnoreCase));
        // nor does anything it depends on transitively
        var seen = new HashSet<string>();
        var queue = new Queue<AssemblyName>(core.GetReferencedAssemblies());
        while (queue.TryDequeue(out var name))
        {
            if (!seen.Add(name.Name!)) continue;
            Assert.False(name.Name!.StartsWith("Akka", StringComparison.OrdinalIgnoreCase), $"FedAvg.Core depends on {name.Name}");
            try
            {
                foreach (var r in Assembly.Load(name).GetReferencedAssemblies()) queue.Enqueue(r);
            }
            catch (FileNotFoundException)
            {
                // facade or native-only: nothing to follow
            }
        }
    }

    [Fact]
    public void The_build_marks_the_GLIBCXX_3_4_32_need_weak_exactly_when_the_system_lacks_it()
    {
        var need = ElfVersionNeed.ReadNeeds(File.ReadAllBytes(LoadedLibTorchSharp())).SingleOrDefault(n => n.Version == "GLIBCXX_3.4.32");
        if (need is null) return; // a future TorchSharp without the marker need: nothing to patch
        var libstdcxx = ElfVersionNeed.FindSystemLibStdCxx();
        bool systemHasIt = libstdcxx is not null && ElfVersionNeed.Defines(libstdcxx, "GLIBCXX_3.4.32");
        Assert.Equal(systemHasIt, (need.Flags & ElfVersionNeed.VerFlagWeak) == 0);
    }

    [Fact]
    public void Marking_weak_is_idempotent_and_touches_only_the_flags()
    {
        string copy = Path.Combine(FedAvg.Tests.Shared.TestData.TempDir(), "libLibTorchSharp.so");
        File.Copy(LoadedLibTorchSharp(), copy);
        var original = File.ReadAllBytes(copy);
        var need = ElfVersionNeed.ReadNeeds(original).First(n => n.File == "libstdc++.so.6");
        // start from the unpatched state
        original[need.FlagsOffset] &= unchecked((byte)~ElfVersionNeed.VerFlagWeak);
        File.WriteAllBytes(copy, original);

        Assert.Equal(ElfVersionNeed.Outcome.Patched, ElfVersionNeed.MarkWeak(copy, need.Version));
        var patched = File.ReadAllBytes(copy);
        Assert.Equal(ElfVersionNeed.Outcome.AlreadyWeak, ElfVersionNeed.MarkWeak(copy, need.Version));
        Assert.Equal(patched, File.ReadAllBytes(copy));

        var differences = Enumerable.Range(0, original.Length).Where(i => original[i] != patched[i]).ToList();
        Assert.Equal([(int)need.FlagsOffset], differences);
        Assert.Equal(ElfVersionNeed.Outcome.NotNeeded, ElfVersionNeed.MarkWeak(copy, "GLIBCXX_9.9.99"));
    }

    [Fact]
    public void A_file_that_is_not_elf_is_refused()
    {
        string path = Path.Combine(FedAvg.Tests.Shared.TestData.TempDir(), "not-elf.so");
        File.WriteAllText(path, "this is not a shared object, just text that is long enough to have a header");
        var e = Assert.Throws<InvalidDataException>(() => ElfVersionNeed.MarkWeak(path, "GLIBCXX_3.4.32"));
        Assert.Contains("not an ELF", e.Message);
    }

    [Fact]
    public void Libtorch_loads_and_computes()
    {
        using var t = TorchSharp.torch.arange(1, 5, dtype: TorchSharp.torch.ScalarType.Float32);
        Assert.Equal(10f, t.sum().item<float>());
    }
}
