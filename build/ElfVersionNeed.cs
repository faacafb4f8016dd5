// Marks chosen entries of an ELF64 shared object's version-need table (.gnu.version_r) weak.
//
// Why: TorchSharp 0.107's libLibTorchSharp.so declares a need for GLIBCXX_3.4.32 only because
// it was linked against a newer libstdc++ that stamps the marker symbol std::ios_base_library_init;
// nothing calls it. Debian 12's libstdc++ stops at GLIBCXX_3.4.30, so the dynamic loader refuses
// the library. A weak version need (VER_FLG_WEAK) lets the loader proceed when the version is
// missing, which is exactly the behaviour we want here and nowhere else.
//
// This file is compiled twice: by MSBuild as an inline task (see Directory.Build.targets) and,
// with ELF_PATCH_NO_MSBUILD defined, into the core tests that check the patch on the real library.
#nullable enable
using System;
using System.Collections.Generic;
using System.IO;
using System.Text;

public static class ElfVersionNeed
{
    public const ushort VerFlagWeak = 0x2;
    const uint ShtGnuVerneed = 0x6ffffffe;

    public enum Outcome { Patched, AlreadyWeak, NotNeeded }

    public sealed class Need
    {
        public Need(string file, string version, ushort flags, long flagsOffset)
        {
            File = file; Version = version; Flags = flags; FlagsOffset = flagsOffset;
        }
        public string File { get; }
        public string Version { get; }
        public ushort Flags { get; }
        public long FlagsOffset { get; }
    }

    /// <summary>Every (file, version) pair the object needs, with the file offset of its flags.</summary>
    public static List<Need> ReadNeeds(byte[] elf)
    {
        if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F')
            throw new InvalidDataException("not an ELF file");
        if (elf[4] != 2) throw new InvalidDataException("not a 64-bit ELF file");
        if (elf[5] != 1) throw new InvalidDataException("not a little-endian ELF file");

        long shoff = (long)BitConverter.ToUInt64(elf, 0x28);
        int shentsize = BitConverter.ToUInt16(elf, 0x3A);
        int shnum = BitConverter.ToUInt16(elf, 0x3C);
        if (shoff <= 0 || shentsize < 64 || shoff + (long)shentsize * shnum > elf.Length)
            throw new InvalidDataException("section header table out of bounds");

        var needs = new List<Need>();
        for (int i = 0; i < shnum; i++)
        {
            long sh = shoff + (long)i * shentsize;
            if (BitConverter.ToUInt32(elf, (int)sh + 4) != ShtGnuVerneed) continue;
            long offset = (long)BitConverter.ToUInt64(elf, (int)sh + 0x18);
            uint link = BitConverter.ToUInt32(elf, (int)sh + 0x28);
            uint count = BitConverter.ToUInt32(elf, (int)sh + 0x2C);
            if (link >= shnum) throw new InvalidDataException("version-need string table index out of range");
            long strSh = shoff + (long)link * shentsize;
            long strOffset = (long)BitConverter.ToUInt64(elf, (int)strSh + 0x18);
            long strSize = (long)BitConverter.ToUInt64(elf, (int)strSh + 0x20);

            long vn = offset;
            for (uint n = 0; n < count; n++)
            {
                CheckRange(elf, vn, 16);
                ushort auxCount = BitConverter.ToUInt16(elf, (int)vn + 2);
                string file = ReadString(elf, strOffset, strSize, BitConverter.ToUInt32(elf, (int)vn + 4));
                long aux = vn + BitConverter.ToUInt32(elf, (int)vn + 8);
                for (int a = 0; a < auxCount; a++)
                {
                    CheckRange(elf, aux, 16);
                    ushort flags = BitConverter.ToUInt16(elf, (int)aux + 4);
                    string version = ReadString(elf, strOffset, strSize, BitConverter.ToUInt32(elf, (int)aux + 8));
                    needs.Add(new Need(file, version, flags, aux + 4));
                    uint nextAux = BitConverter.ToUInt32(elf, (int)aux + 12);
                    if (nextAux == 0) break;
                    aux += nextAux;
                }
                uint next = BitConverter.ToUInt32(elf, (int)vn + 12);
                if (next == 0) break;
                vn += next;
            }
        }
        return needs;
    }

    /// <summary>Marks the need for <paramref name="version"/> weak in place; idempotent.</summary>
    public static Outcome MarkWeak(string path, string version)
    {
        byte[] elf = File.ReadAllBytes(path);
        Need? target = null;
        foreach (var need in ReadNeeds(elf))
            if (need.Version == version) { target = need; break; }
        if (target is null) return Outcome.NotNeeded;
        if ((target.Flags & VerFlagWeak) != 0) return Outcome.AlreadyWeak;

        ushort flags = (ushort)(target.Flags | VerFlagWeak);
        // Rewrite through a temporary file so a crash never leaves a half-written library behind.
        string temp = path + ".weak-tmp";
        elf[target.FlagsOffset] = (byte)(flags & 0xff);
        elf[target.FlagsOffset + 1] = (byte)(flags >> 8);
        File.WriteAllBytes(temp, elf);
        File.Replace(temp, path, null); // rename(2) on Linux
        return Outcome.Patched;
    }

    static readonly string[] LibStdCxxCandidates =
    {
        "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/lib/x86_64-linux-gnu/libstdc++.so.6",
        "/usr/lib/aarch64-linux-gnu/libstdc++.so.6", "/usr/lib64/libstdc++.so.6", "/usr/lib/libstdc++.so.6",
    };

    /// <summary>The system libstdc++ that the dynamic loader would pick, or null when none is found.</summary>
    public static string? FindSystemLibStdCxx()
    {
        foreach (var candidate in LibStdCxxCandidates)
            if (File.Exists(candidate)) return candidate;
        return null;
    }

    /// <summary>True when the library defines the version (its name appears NUL-terminated in its strings).</summary>
    public static bool Defines(string libraryPath, string version)
    {
        byte[] lib = File.ReadAllBytes(libraryPath);
        byte[] needle = Encoding.ASCII.GetBytes(version + "\0");
        return IndexOf(lib, needle) >= 0;
    }

    static int IndexOf(byte[] haystack, byte[] needle)
    {
        int first = needle[0];
        for (int i = Array.IndexOf(haystack, (byte)first); i >= 0 && i <= haystack.Length - needle.Length;
             i = Array.IndexOf(haystack, (byte)first, i + 1))
        {
            if (i > 0 && haystack[i - 1] != 0) continue; // a whole string, not a suffix of a longer one
            int j = 1;
            while (j < needle.Length && haystack[i + j] == needle[j]) j++;
            if (j == needle.Length) return i;
        }
        return -1;
    }

    static void CheckRange(byte[] elf, long offset, int length)
    {
        if (offset < 0 || offset + length > elf.Length) throw new InvalidDataException("version-need entry out of bounds");
    }

    static string ReadString(byte[] elf, long tableOffset, long tableSize, uint index)
    {
        if (index >= tableSize) throw new InvalidDataException("string index out of range");
        long start = tableOffset + index;
        long end = start;
        while (end < elf.Length && elf[end] != 0) end++;
        return Encoding.ASCII.GetString(elf, (int)start, (int)(end - start));
    }
}

#if !ELF_PATCH_NO_MSBUILD
public sealed class MarkElfVersionNeedWeak : Microsoft.Build.Utilities.Task
{
    [Microsoft.Build.Framework.Required] public Microsoft.Build.Framework.ITaskItem[] Files { get; set; } = Array.Empty<Microsoft.Build.Framework.ITaskItem>();
    [Microsoft.Build.Framework.Required] public string VersionName { get; set; } = "";

    public override bool Execute()
    {
        var libStdCxx = ElfVersionNeed.FindSystemLibStdCxx();
        if (libStdCxx is null)
        {
            Log.LogMessage(Microsoft.Build.Framework.MessageImportance.Low, "No system libstdc++ found; leaving libLibTorchSharp.so as shipped.");
            return true;
        }
        if (ElfVersionNeed.Defines(libStdCxx, VersionName))
        {
            Log.LogMessage(Microsoft.Build.Framework.MessageImportance.Low, $"{libStdCxx} defines {VersionName}; no patch needed.");
            return true;
        }
        foreach (var item in Files)
        {
            try
            {
                var outcome = ElfVersionNeed.MarkWeak(item.ItemSpec, VersionName);
                var importance = outcome == ElfVersionNeed.Outcome.Patched
                    ? Microsoft.Build.Framework.MessageImportance.Normal : Microsoft.Build.Framework.MessageImportance.Low;
                Log.LogMessage(importance, $"{item.ItemSpec}: {VersionName} need {outcome} ({libStdCxx} lacks it).");
            }
            catch (Exception e) when (e is IOException || e is InvalidDataException || e is UnauthorizedAccessException)
            {
                Log.LogError($"Could not mark {VersionName} weak in {item.ItemSpec}: {e.Message}");
            }
        }
        return !Log.HasLoggedErrors;
    }
}
#endif
